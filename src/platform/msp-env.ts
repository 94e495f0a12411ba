/**
 * `SVP_MSP_EXTENSION`: turn svp's MSP extension (docs/msp-extension.md) off (`off`, `0`) or
 * on (`on`, `1`) for the streams of this process, whatever the backend's default. Off makes
 * every stream speak classic MSP, exactly as servald's tools do: for comparisons (the
 * benchmark's servald-window figures) and for troubleshooting a peer.
 */

import { UsageError } from "../errors.ts";

export function mspExtensionSetting(value: string | undefined = process.env.SVP_MSP_EXTENSION): boolean | undefined {
  if (value === undefined || value === "") return undefined;
  const v = value.toLowerCase();
  if (v === "off" || v === "0") return false;
  if (v === "on" || v === "1") return true;
  throw new UsageError(`invalid SVP_MSP_EXTENSION "${value}": expected on or off`);
}
