// Bundle the CLI into one CommonJS file, dist/svp.cjs (the input of the single binary).
import { build } from "esbuild";
import { readFileSync, chmodSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

await build({
  // cli/bin.ts answers --version itself and loads cli/main.ts (kept lazy by esbuild) otherwise.
  entryPoints: ["cli/bin.ts"],
  outfile: "dist/svp.cjs",
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  minify: false,
  sourcemap: false,
  legalComments: "none",
  define: { __SVP_VERSION__: JSON.stringify(pkg.version) },
  banner: { js: "#!/usr/bin/env node" },
  logLevel: "warning",
});
chmodSync("dist/svp.cjs", 0o755);
