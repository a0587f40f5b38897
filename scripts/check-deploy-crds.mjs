// Validates the custom resources of the rendered manifests (KEDA's ScaledObject and
// TriggerAuthentication, the Prometheus operator's ServiceMonitor and PrometheusRule) against
// their schemas, as the npm packages @kubernetes-models/keda and
// @kubernetes-models/prometheus-operator publish them (generated from those projects' API
// types), in two ways:
//   1. each package's own validator (types, required fields, enums, formats);
//   2. the TypeScript compiler on every document as an object literal of the resource's type,
//      which rejects a field the schema does not have, at any depth: what `kubectl apply`
//      (strict field validation) would refuse once the CRD is installed.
// Run by scripts/check-deploy.sh from the directory where those packages are installed:
//   node check-deploy-crds.mjs DOCS.json    (a JSON array of {file, doc})
import { readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

// API group -> npm package. A custom resource of another group fails the check: add its
// package here and in scripts/check-deploy.sh.
const PACKAGES = {
  "keda.sh": "@kubernetes-models/keda",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
const ts = [];
for (const [i, { file, doc }] of docs.entries()) {
  const name = `${doc.kind}/${doc.metadata?.name} in ${file}`;
  const [group, version] = doc.apiVersion.split("/");
  const pkg = PACKAGES[group];
  if (!pkg) {
    console.log(`ERROR ${name}: no schema known for the API group ${group}`);
    failed++;
    continue;
  }
  const path = `${pkg}/${group}/${version}/${doc.kind}`;
  let Model;
  try {
    Model = (await import(path))[doc.kind];
  } catch (e) {
    console.log(`ERROR ${name}: no schema for ${doc.apiVersion} ${doc.kind} (${e.message})`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`INFO ${name} passed ${path}`);
  } catch (e) {
    console.log(`ERROR ${name} did not validate against ${path}: ${e.message}`);
    failed++;
  }
  ts.push(`import type { I${doc.kind} as T${i} } from "${path}";`);
  ts.push(`// ${name}\nexport const doc${i}: T${i} = ${JSON.stringify(doc, null, 2)};`);
}

writeFileSync("crds.ts", ts.join("\n") + "\n");
try {
  execFileSync(
    "node_modules/.bin/tsc",
    ["--noEmit", "--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
      "--skipLibCheck", "crds.ts"],
    { encoding: "utf8", stdio: "pipe" },
  );
  console.log(`INFO ${docs.length} custom resources: no field their schemas do not have`);
} catch (e) {
  // tsc names the line of crds.ts; the comment above each document says which it is.
  console.log(`ERROR custom resources with fields their schemas do not have (or of the wrong type):\n${e.stdout}`);
  console.log(`(the documents are in ${process.cwd()}/crds.ts)`);
  failed++;
}
process.exit(failed ? 1 : 0);
