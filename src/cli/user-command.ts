import { accountHashes } from '../app/server/accounts.js';
import { DEFAULT_CONFIG } from '../app/server/server-config.js';
import { aorOf, displayAor } from '../app/store/aor.js';
import { openStore } from '../app/store/open-store.js';
import { StoreError } from '../app/store/store-error.js';
import { parseArguments } from './arguments.js';
import { readPassword } from './password.js';

const USAGE = 'usage: parley user add|remove|passwd USER@DOMAIN [--password P] [--data DIR]\n       parley user list [--data DIR]';

/** `parley user`: accounts in the server's data directory (the server may be running). */
export async function userCommand(args: string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const parsed = parseArguments(args, { password: 'string', data: 'string' });
  if (typeof parsed === 'string') {
    err(`${parsed}\n${USAGE}`);
    return 2;
  }
  const [action, address, ...extra] = parsed.positional;
  const needsAddress = action === 'add' || action === 'remove' || action === 'passwd';
  if (!(needsAddress || action === 'list') || (needsAddress && address === undefined) || (action === 'list' && address !== undefined) || extra.length > 0) {
    err(USAGE);
    return 2;
  }
  const data = parsed.strings.get('data') ?? DEFAULT_CONFIG.data;
  const store = openStore(data);
  try {
    if (action === 'list') {
      for (const account of store.accounts()) out(displayAor(account.aor));
      return 0;
    }
    let aor: string;
    try {
      aor = aorOf(address!);
    } catch (error) {
      err(`parley user: ${(error as Error).message}`);
      return 2;
    }
    const name = displayAor(aor);
    if (action === 'remove') {
      if (!store.removeAccount(aor)) {
        err(`parley user: no user ${name}`);
        return 1;
      }
      out(`removed ${name}`);
      return 0;
    }
    if (action === 'add' && store.account(aor)) {
      err(`parley user: ${name} already exists`);
      return 1;
    }
    if (action === 'passwd' && !store.account(aor)) {
      err(`parley user: no user ${name}`);
      return 1;
    }
    const password = await readPassword(parsed.strings.get('password'), `password for ${name}: `);
    if (password === undefined || password === '') {
      err('parley user: a password is needed: --password P, PARLEY_PASSWORD, or a terminal to type it on');
      return 2;
    }
    try {
      if (action === 'add') store.addAccount(aor, accountHashes(aor, password));
      else store.updateAccount(aor, accountHashes(aor, password));
    } catch (error) {
      if (error instanceof StoreError) {
        err(`parley user: ${error.message}`);
        return 1;
      }
      throw error;
    }
    out(action === 'add' ? `added ${name}` : `password changed for ${name}`);
    return 0;
  } finally {
    await store.close();
  }
}
