/** Replaced at bundle time by esbuild's `define`; read from package.json when run from source. */
declare const __SVP_VERSION__: string | undefined;
export const VERSION: string = typeof __SVP_VERSION__ === "string" ? __SVP_VERSION__ : "0.1.0-dev";
/** What `svp --version` prints. */
export const VERSION_LINE = `svp ${VERSION}\n`;
/** The one-line description: the title of `--help` and the man page's NAME line. */
export const TAGLINE = "Serval mesh streams for ordinary TCP software";
