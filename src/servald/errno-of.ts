/**
 * The errno name behind a platform error: how the servald backend tells "the daemon's
 * socket is gone" (ECONNREFUSED, ECONNRESET) and "this client name is taken" (EADDRINUSE)
 * from other failures, whatever SvpError wraps them.
 */

/** The errno name behind a platform error ("EADDRINUSE", …), if any; follows `cause` up to 4 deep. */
export function errnoOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; typeof e === "object" && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code) && !code.startsWith("ERR")) return code;
  }
  return undefined;
}
