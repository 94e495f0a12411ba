/** Small file reads for configuration (auth files), with errors that name the file. */

import { readFileSync, statSync } from "node:fs";
import { UsageError } from "../errors.ts";

export interface TextFile {
  text: string;
  /** True when group or others may read the file (secrets should be owner-only). */
  exposed: boolean;
}

/** Read a UTF-8 text file of at most `maxBytes`; a UsageError mentioning `what` otherwise. */
export function readTextFile(path: string, what: string, maxBytes = 1024 * 1024): TextFile {
  let size: number;
  let mode: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`invalid ${what} ${path}: not a regular file`);
    size = st.size;
    mode = st.mode;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`invalid ${what} ${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  if (size > maxBytes) throw new UsageError(`invalid ${what} ${path}: larger than ${maxBytes} bytes`);
  try {
    return { text: readFileSync(path, "utf8"), exposed: (mode & 0o044) !== 0 };
  } catch (err) {
    throw new UsageError(`invalid ${what} ${path}: ${(err as Error).message}`);
  }
}
