import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';

/**
 * The password from `--password`, else `PARLEY_PASSWORD`, else a prompt on the terminal that
 * does not echo what is typed. Undefined when there is none and no terminal to ask on.
 */
export async function readPassword(flag: string | undefined, prompt: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (flag !== undefined) return flag;
  if (env.PARLEY_PASSWORD !== undefined) return env.PARLEY_PASSWORD;
  if (!process.stdin.isTTY) return undefined;
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  try {
    return await new Promise<string>((resolve) => {
      rl.question(prompt, (answer) => {
        process.stderr.write('\n');
        resolve(answer);
      });
      muted = true;
    });
  } finally {
    rl.close();
  }
}
