/** How a flag takes its value: one string, a repeatable string, or none. */
export type FlagKind = 'string' | 'list' | 'boolean';

export interface ParsedArguments {
  strings: Map<string, string>;
  lists: Map<string, string[]>;
  booleans: Set<string>;
  positional: string[];
}

/**
 * `--name value`, `--name=value`, repeatable `--name v1 --name v2`, and bare `--switch`; anything
 * else is positional. Returns a message for people on an unknown or incomplete flag.
 */
export function parseArguments(args: readonly string[], spec: Readonly<Record<string, FlagKind>>): ParsedArguments | string {
  const parsed: ParsedArguments = { strings: new Map(), lists: new Map(), booleans: new Set(), positional: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--') || arg === '--') {
      parsed.positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const kind = spec[name];
    if (kind === undefined) return `unknown option --${name}`;
    if (kind === 'boolean') {
      if (eq > 0) return `--${name} takes no value`;
      parsed.booleans.add(name);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined) return `--${name} needs a value`;
    if (kind === 'string') parsed.strings.set(name, value);
    else parsed.lists.set(name, [...(parsed.lists.get(name) ?? []), value]);
  }
  return parsed;
}

/** A positive integer flag, or a message saying what is wrong with it. */
export function positiveInteger(value: string | undefined, name: string): number | undefined | string {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : `--${name} must be a positive integer`;
}
