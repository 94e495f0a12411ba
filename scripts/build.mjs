// The build (`npm run build`, `make`, and `npm pack` through "prepack"):
//   dist/svp.cjs        the CLI bundled into one CommonJS file (the `svp` command and the input of the single binary);
//   dist/index.js       the library (src/index.ts) bundled into one ES module: what `import … from "svp"` loads;
//   dist/types/         its type declarations (tsc --emitDeclarationOnly, tsconfig.types.json).
// `--no-types` skips the declarations (a few seconds of tsc) when only the bundles are wanted;
// `--out DIR` writes DIR/dist/… instead of dist/… (test/api/pack.test.ts stages a package).
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const outArg = process.argv.indexOf("--out");
const dist = outArg > 0 && process.argv[outArg + 1] ? join(process.argv[outArg + 1], "dist") : "dist";

await build({
  // cli/bin.ts answers --version itself and loads cli/main.ts (kept lazy by esbuild) otherwise.
  entryPoints: ["cli/bin.ts"],
  outfile: join(dist, "svp.cjs"),
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
chmodSync(join(dist, "svp.cjs"), 0o755);

await build({
  entryPoints: ["src/index.ts"],
  outfile: join(dist, "index.js"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: false,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
});

if (!process.argv.includes("--no-types")) {
  const types = join(dist, "types");
  rmSync(types, { recursive: true, force: true });
  const tsc = join("node_modules", ".bin", "tsc");
  const r = spawnSync(tsc, ["-p", "tsconfig.types.json", "--declarationDir", types], { stdio: "inherit" });
  if (r.status !== 0) {
    process.stderr.write(`build: ${tsc} -p tsconfig.types.json failed (${r.status ?? r.error?.message})\n`);
    process.exit(1);
  }
  // The sources import "./x.ts"; a consumer's TypeScript resolves the declarations as "./x.js".
  const fix = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) fix(p);
      else if (p.endsWith(".d.ts")) writeFileSync(p, readFileSync(p, "utf8").replace(/(from\s+|import\()(["'])(\.{1,2}\/[^"']+)\.ts\2/g, "$1$2$3.js$2"));
    }
  };
  fix(types);
}
