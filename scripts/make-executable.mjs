// tsc writes files without the executable bit; `npx parley` runs dist/cli/main.js directly (its
// #! line), so the build sets the bit on each file named here.
import { chmodSync, statSync } from 'node:fs';

for (const file of process.argv.slice(2)) chmodSync(file, statSync(file).mode | 0o111);
