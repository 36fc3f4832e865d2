/**
 * Whether a Content-Type is among `types` (which may hold `type/*` and `*∕*`, RFC 3261 §20.1);
 * a request without a body type is always taken.
 */
export function acceptsType(types: readonly string[], contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const media = contentType.split(';')[0]!.trim().toLowerCase();
  const slash = media.indexOf('/');
  return types.some((t) => t === '*/*' || t === media || (t.endsWith('/*') && t.slice(0, -1) === media.slice(0, slash + 1)));
}
