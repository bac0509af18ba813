// node tests/sarif/validate.mjs FILE.sarif
//
// Validates a SARIF log against the SARIF 2.1.0 JSON schema and exits 0
// ("FILE: valid SARIF 2.1.0"), 1 with one line per problem, or 2 on bad
// usage. Install the tooling first: npm ci --prefix tests/sarif
//
// The schema is the one @microsoft/jest-sarif ships
// (lib/schemas/sarif-2.1.0-rtm.5.json: SchemaStore's copy of the 2.1.0
// schema, JSON Schema draft-04); no npm package ships the OASIS file
// sarif-schema-2.1.0.json itself. The OASIS errata01 schema differs from
// it in two ways that matter here, both applied below so that a log valid
// here is valid under both: (1) rtm.5's pattern for `language`,
// "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$", is a broken regular
// expression (a stray "]"; ajv 8 refuses it): errata01's
// "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$" replaces it; (2) every region must have
// startLine, charOffset or byteOffset (checked by hand).
import {readFileSync} from "node:fs";
import {createRequire} from "node:module";
import Ajv from "ajv-draft-04";
import addFormats from "ajv-formats";

const require = createRequire(import.meta.url);
const SCHEMA = "@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json";
const RTM5_LANGUAGE = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
const ERRATA01_LANGUAGE = "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$";

// The schema with errata01's pattern for `language` (see above).
function loadSchema() {
  const schema = structuredClone(require(SCHEMA));
  let fixed = 0;
  for (const name of ["run", "toolComponent"]) {
    const language = schema.definitions[name].properties.language;
    if (language.pattern === RTM5_LANGUAGE) {
      language.pattern = ERRATA01_LANGUAGE;
      fixed++;
    }
  }
  if (fixed !== 2) throw new Error(`${SCHEMA}: not the expected rtm.5 schema`);
  return schema;
}

// Every region object in the log, with its JSON pointer.
function* regions(value, pointer = "") {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) yield* regions(v, `${pointer}/${i}`);
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const p = `${pointer}/${k}`;
      if ((k === "region" || k === "contextRegion") && v && typeof v === "object") yield [p, v];
      yield* regions(v, p);
    }
  }
}

function main(args) {
  if (args.length !== 1) {
    console.error("usage: node tests/sarif/validate.mjs FILE");
    return 2;
  }
  const file = args[0];
  let log;
  try {
    log = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    console.error(`${file}: not JSON: ${e.message}`);
    return 1;
  }
  const ajv = new Ajv({allErrors: true, strict: false});
  addFormats(ajv);
  const validate = ajv.compile(loadSchema());
  const problems = [];
  if (!validate(log)) {
    for (const e of validate.errors) problems.push(`${e.instancePath || "/"}: ${e.message} ${JSON.stringify(e.params)}`);
  }
  for (const [p, r] of regions(log)) {
    if (!("startLine" in r || "charOffset" in r || "byteOffset" in r)) {
      problems.push(`${p}: a region needs startLine, charOffset or byteOffset (SARIF 2.1.0 errata01)`);
    }
  }
  if (log.version !== "2.1.0") problems.push(`/version: expected "2.1.0", got ${JSON.stringify(log.version)}`);
  for (const p of problems) console.log(`${file}: ${p}`);
  if (problems.length > 0) return 1;
  console.log(`${file}: valid SARIF 2.1.0`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
