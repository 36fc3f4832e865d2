import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Message-IDs remembered per device for duplicate suppression (oldest forgotten first). */
const SEEN_LIMIT = 5000;

interface StateFile {
  /** RFC 5626 +sip.instance per device name: the server keeps a delivery cursor per instance. */
  instances: Record<string, string>;
  seen: Record<string, string[]>;
}

/**
 * What a device must keep across runs: its instance URN (so the server resumes delivery where
 * this device stopped) and the Message-IDs it has shown (so a redelivery is not shown twice).
 * One JSON file, replaced atomically (write, then rename) on every change.
 */
export class DeviceState {
  private readonly seenIds: Set<string>;

  private constructor(
    private readonly file: string,
    private readonly data: StateFile,
    private readonly device: string,
  ) {
    this.seenIds = new Set(data.seen[device] ?? []);
  }

  static open(dir: string, device: string): DeviceState {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'device.json');
    let data: StateFile = { instances: {}, seen: {} };
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<StateFile>;
      data = { instances: parsed.instances ?? {}, seen: parsed.seen ?? {} };
    } catch {
      // No state yet (or unreadable): a new device.
    }
    const state = new DeviceState(file, data, device);
    if (!data.instances[device]) {
      data.instances[device] = `urn:uuid:${randomUUID()}`;
      state.save();
    }
    return state;
  }

  get instanceId(): string {
    return this.data.instances[this.device]!;
  }

  seen(messageId: string): boolean {
    return this.seenIds.has(messageId);
  }

  remember(messageId: string): void {
    this.seenIds.add(messageId);
    if (this.seenIds.size > SEEN_LIMIT) this.seenIds.delete(this.seenIds.values().next().value!);
    this.data.seen[this.device] = [...this.seenIds];
    this.save();
  }

  private save(): void {
    const temporary = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(this.data));
    renameSync(temporary, this.file);
  }
}
