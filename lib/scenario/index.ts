/**
 * Scenarios: the one format that drives the simulator and a real guest, the runner written once
 * against HotplugTarget, the guest runner, the differ with its normalisations and exceptions, and
 * JUnit output (docs/architecture.md#the-data-flow-of-a-scenario).
 */
export { ScenarioError, ScenarioRunError, type ScenarioIssue } from './errors.js';
export {
  SCENARIO_KERNELS,
  STEP_OPS,
  loadScenario,
  parseScenario,
  validateScenario,
  parseDocument,
  kernelCmdline,
  stepText,
  type Scenario,
  type ScenarioKernel,
  type ScenarioFormat,
  type MachineDescription,
  type KernelCmdline,
  type Step,
  type StepOp,
  type Expect,
  type SizeText,
  type InjectAction,
  type PlugStep,
  type UnplugStep,
  type WriteStep,
  type ReadStep,
  type InjectStep,
  type UninjectStep,
  type InsmodStep,
  type RmmodStep,
  type AllocStep,
  type FreeStep,
  type PinStep,
  type UnpinStep,
  type SnapshotStep,
  type CensusStep,
} from './schema.js';
export { takeCensus, CENSUS_ROOTS, entryText, resolveLink, type Census } from './census.js';
export type { Observation, StepObservation, StepResult, Snapshot, BlockSnapshot, FileValue, FileError, RamSnapshot, ZoneSnapshot, MemmapEntrySnapshot, TargetKind, GuestBootSummary } from './observation.js';
export {
  takeSnapshot,
  guestSnapshotter,
  flattenSnapshot,
  compactList,
  parseZoneinfo,
  parseMemTotal,
  parseIomem,
  MEMORY_ROOT,
  NODE_ROOT,
  MEMMAP_ROOT,
  BLOCK_ATTRS,
  type Snapshotter,
  type ShellTarget,
} from './snapshot.js';
export {
  runScenario,
  checkExpectation,
  DEFAULT_HANDLERS,
  INJECT_DIR,
  INJECT_MODULE,
  INJECT_BASE_MODULE,
  type RunOptions,
  type RunState,
  type StepContext,
  type StepHandler,
  type StepHandlers,
  type StepOutcome,
} from './run.js';
export { runOnGuest, guestBootOptions, type GuestRunOptions } from './guest.js';
export { NORMALISATIONS, normalisationApplies, type Normalisation, type NormalisationScope } from './normalise.js';
export { loadExceptions, loadExceptionsFrom, validateExceptions, exceptionMatches, type DivergenceException, type DifferenceKind, type ExceptionSubject } from './exceptions.js';
export { diffObservations, formatDiff, formatRecord, formatSteps, recordKey, resultText, type Difference, type DiffReport, type DiffOptions, type ExceptedDifference } from './diff.js';
export { toJUnit, xmlEscape, type ConformanceCase } from './junit.js';
export { runOnSimulator, runOnMachine, createSimMachine, simMachineOptions, simHandlers, type SimRunOptions } from './sim.js';
