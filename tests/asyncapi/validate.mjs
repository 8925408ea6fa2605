// Checks docs/asyncapi.yaml two ways: the official AsyncAPI parser (@asyncapi/parser, the one
// AsyncAPI's CLI and Studio use) must find no error in it, and the YAML must read back as
// exactly the JSON `parlor asyncapi --json` prints (the document GET /asyncapi.json serves), so
// the hand-written YAML emitter cannot change a value.
//
// Usage: node validate.mjs <docs/asyncapi.yaml> <the JSON document>
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";
import yaml from "js-yaml";

const [yamlPath, jsonPath] = process.argv.slice(2);
if (!yamlPath || !jsonPath) {
  console.error("usage: node validate.mjs <asyncapi.yaml> <asyncapi.json>");
  process.exit(2);
}
const text = readFileSync(yamlPath, "utf8");
let failures = 0;

// JSON_SCHEMA: plain YAML 1.2 core types, as a JSON reader would see them.
const fromYaml = yaml.load(text, { schema: yaml.JSON_SCHEMA });
const fromJson = JSON.parse(readFileSync(jsonPath, "utf8"));
if (isDeepStrictEqual(fromYaml, fromJson)) {
  console.log("ok: the YAML reads back as the served JSON");
} else {
  console.error("FAIL: the YAML does not read back as the JSON document");
  failures += 1;
}

const { document, diagnostics } = await new Parser().parse(text);
for (const diagnostic of diagnostics) {
  const where = diagnostic.path.join("/");
  const severity = DiagnosticSeverity[diagnostic.severity] ?? diagnostic.severity;
  console.error(`${severity}: ${diagnostic.code}: ${diagnostic.message} at /${where}`);
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
if (document === undefined || errors.length > 0) {
  console.error(`FAIL: the AsyncAPI parser found ${errors.length} error(s)`);
  failures += 1;
} else {
  const channels = document.channels().length;
  const operations = document.operations().length;
  console.log(`ok: valid AsyncAPI ${document.version()}, ${channels} channels, ${operations} operations`);
}
console.log(`asyncapi: ${2 - failures} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
