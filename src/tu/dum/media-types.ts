/**
 * Whether a Content-Type is among `types` (which may hold `type/*` and `*∕*`, RFC 3261 §20.1);
 * a request without a body type is always taken.
 */
export function acceptsType(types: readonly string[], contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const media = mediaTypeOf(contentType);
  const slash = media.indexOf('/');
  return types.some((t) => t === '*/*' || t === media || (t.endsWith('/*') && t.slice(0, -1) === media.slice(0, slash + 1)));
}

/** The media type of a Content-Type, lower-cased, without parameters (`text/plain`). */
export function mediaTypeOf(contentType: string): string {
  return contentType.split(';')[0]!.trim().toLowerCase();
}
