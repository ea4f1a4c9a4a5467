/**
 * `/sys/firmware/memmap` (drivers/firmware/memmap.c): the raw e820 map at boot, then one entry per
 * memory range hot-added as System RAM (firmware_map_add_hotplug), removed again with it
 * (firmware_map_remove). Entries are numbered in the order they were made; a number is never reused.
 */

/** One entry: `start`, `end` (exclusive here; the file shows end - 1) and `type`. */
export interface MemmapEntry {
  /** First byte. */
  readonly start: number;
  /** One past the last byte. */
  readonly end: number;
  /** 'System RAM', 'Reserved', 'ACPI Tables', …. */
  readonly type: string;
}

/** The firmware memmap: entries by their number. */
export class FirmwareMemmap extends Map<number, MemmapEntry> {
  #next = 0;

  /** `firmware_map_add_early` / `firmware_map_add_hotplug`: a new entry with the next number. */
  addEntry(e: MemmapEntry): void {
    this.set(this.#next++, e);
  }

  /** `firmware_map_remove(start, end, type)`: the entry of exactly that range and type, if any. */
  removeEntry(start: number, end: number, type: string): void {
    for (const [k, e] of this) if (e.start === start && e.end === end && e.type === type) return void this.delete(k);
  }
}
