// validate.js - reads NDJSON from stdin, one FHIR R4 resource (a Bundle's
// entries included) a line, and validates each against the R4 definitions
// with FHIR.js.  Exits 1 if any is invalid.  Errors always fail; warnings
// fail too, except the one kind the mapping accepts on purpose: a code
// "not found in value set" of serviceType, whose R4 binding is an example
// (Chup's services are their own code system; docs/fhir.md).
'use strict';
const { Fhir } = require('fhir');
const fs = require('fs');

const fhir = new Fhir();
const lines = fs.readFileSync(0, 'utf8').split('\n').filter((l) => l.length);
let bad = 0;
let checked = 0;

function accepted(m) {
  if (m.severity === 'information' || m.severity === 'info') return true;
  return m.severity === 'warning' && /serviceType/.test(m.location) &&
      /not found in value set/.test(m.message);
}

lines.forEach((line, i) => {
  let res;
  try {
    res = JSON.parse(line);
  } catch (e) {
    console.log(`line ${i + 1}: not JSON: ${e.message}`);
    bad++;
    return;
  }
  const r = fhir.validate(res);
  const faults = r.messages.filter((m) => !accepted(m));
  checked++;
  if (!r.valid || faults.length) {
    bad++;
    console.log(`line ${i + 1} (${res.resourceType}): ` +
                JSON.stringify(faults));
  }
});
console.log(`${checked} resources checked, ${bad} invalid`);
process.exit(bad || checked === 0 ? 1 : 0);
