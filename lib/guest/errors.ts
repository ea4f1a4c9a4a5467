/**
 * Errors of the guest harness: provisioning, booting and talking to a real kernel under QEMU.
 * A guest kernel's own refusal (a failed sysfs write) is a {@link KernelError}, not one of these.
 */
import { MemhpError } from '../errors.js';

/** A harness failure: QEMU died, the guest did not get ready, the agent broke the protocol, a download failed. */
export class GuestError extends MemhpError {
  /** The last lines of the guest's serial console, when there was a guest. */
  readonly console?: string;

  constructor(message: string, options?: { cause?: unknown; console?: string }) {
    const tail = options?.console ? `\n--- guest console (tail) ---\n${options.console}` : '';
    super(message + tail, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.console !== undefined) this.console = options.console;
  }
}
