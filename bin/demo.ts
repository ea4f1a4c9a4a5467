/** `npm start`: the main-job demo (a simulation on the built-in default machine; no QEMU needed). */
import { runDemo } from '../lib/sim/demo.js';

await runDemo();
