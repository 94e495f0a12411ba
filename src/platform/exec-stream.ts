/**
 * `svp listen --exec CMD`: a program per connection, its stdin/stdout as the stream
 * (a `PipeStream`). The command runs through `/bin/sh -c`, in its own process group, with
 * the caller in its environment (SVP_PEER_SID, SVP_PEER_PORT); its stderr is svp's.
 *
 * - The program's exit ends the stream gracefully: its remaining output is delivered, then
 *   `end`, and nothing more can be written to it. A program killed by a signal it was not
 *   sent by svp closes the stream with ERR_RESET.
 * - `abort()` kills the process group (SIGTERM, SIGKILL 2 s later if still there).
 * - `spawnExec()` resolves once the program has started; it rejects (and the caller is
 *   refused) when it cannot be started.
 */

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { SvpError, toSvpError, abortError } from "../errors.ts";
import { PipeStream } from "./stdio-stream.ts";

export interface ExecOptions {
  /** Extra environment variables (on top of svp's own environment). */
  env?: Record<string, string>;
  /** Give up when the signal aborts while starting. */
  signal?: AbortSignal;
  /** Shell to run the command with. Default /bin/sh. */
  shell?: string;
}

export class ExecStream extends PipeStream {
  readonly child: ChildProcess;
  #exited = false;
  #killedByUs = false;
  #killTimer: ReturnType<typeof setTimeout> | undefined;
  /** Exit code, or the signal name, once the program has ended. */
  exitStatus: number | string | undefined;

  /** @internal Use `spawnExec()`. */
  constructor(child: ChildProcess, label: string) {
    super(child.stdout!, child.stdin!, label);
    this.child = child;
    child.on("close", (code, signal) => {
      this.#exited = true;
      if (this.#killTimer) clearTimeout(this.#killTimer);
      this.exitStatus = signal ?? code ?? undefined;
      if (signal && !this.#killedByUs) {
        this.fail(new SvpError("ERR_RESET", `${label} was killed by ${signal}`));
        return;
      }
      // Nobody reads the program's stdin any more.
      this.endWriteSide();
      this.checkClose();
    });
  }

  protected override canClose(): boolean {
    return this.#exited;
  }

  protected override onAbort(): void {
    this.#kill();
  }

  protected override fail(err: SvpError): void {
    super.fail(err);
    this.#kill();
  }

  #kill(): void {
    if (this.#exited || this.#killedByUs) return;
    this.#killedByUs = true;
    const pid = this.child.pid;
    const signal = (sig: NodeJS.Signals) => {
      try {
        if (pid !== undefined) process.kill(-pid, sig);
        else this.child.kill(sig);
      } catch {
        try {
          this.child.kill(sig);
        } catch {
          // already gone
        }
      }
    };
    signal("SIGTERM");
    this.#killTimer = setTimeout(() => signal("SIGKILL"), 2000);
    this.#killTimer.unref?.();
  }
}

/** Start `command` (through the shell); resolves once it runs. */
export function spawnExec(command: string, options: ExecOptions = {}): Promise<ExecStream> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(abortError(options.signal.reason, "exec"));
    let child: ChildProcess;
    try {
      child = spawn(options.shell ?? "/bin/sh", ["-c", command], {
        stdio: ["pipe", "pipe", "inherit"],
        env: { ...process.env, ...options.env },
        detached: true,
      });
    } catch (err) {
      return reject(new SvpError("ERR_REFUSED", `cannot run ${command}: ${toSvpError(err).message}`));
    }
    const label = `exec ${command.length > 40 ? command.slice(0, 40) + "…" : command}`;
    const onError = (err: Error) => {
      child.off("spawn", onSpawn);
      reject(new SvpError("ERR_REFUSED", `cannot run ${command}: ${err.message}`));
    };
    const onSpawn = () => {
      child.off("error", onError);
      const stream = new ExecStream(child, label);
      child.on("error", () => {
        // Reported through the streams and 'close'; a late spawn error must not crash svp.
      });
      if (options.signal?.aborted) {
        stream.abort();
        return reject(abortError(options.signal.reason, "exec"));
      }
      resolve(stream);
    };
    child.once("error", onError);
    child.once("spawn", onSpawn);
  });
}
