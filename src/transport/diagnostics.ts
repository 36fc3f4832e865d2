import { channel } from 'node:diagnostics_channel';

/**
 * Observability without console output (STYLE.md): transports publish what they drop and why on
 * `diagnostics_channel` channels named `parley:transport:<topic>`; subscribe to watch them.
 */
const channels = new Map<string, ReturnType<typeof channel>>();

export function publish(topic: 'drop' | 'transport-error' | 'connection', data: object): void {
  let ch = channels.get(topic);
  if (!ch) channels.set(topic, (ch = channel(`parley:transport:${topic}`)));
  if (ch.hasSubscribers) ch.publish(data);
}
