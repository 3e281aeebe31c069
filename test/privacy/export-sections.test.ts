/**
 * Issue 15: the export's sections are driven by the data map. Every
 * section a place of the map feeds has a builder, every builder feeds a
 * section some place names, and the document's schema lists the same
 * sections in the same order: a place added to the map without a way to
 * show it (or a builder left over after a place is gone) fails here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DATA_MAP, EXPORT_SECTIONS, PrivacyExportSchema, PrivacyExporter, mappedSections, privacyExportJsonSchema, type ExportSection, type PrivacyExporterOptions } from '../../src/privacy/index.ts';

/** The builders only: none is called, so nothing they read is needed. */
const exporter = new PrivacyExporter({} as PrivacyExporterOptions);
const mapped = [...new Set(DATA_MAP.flatMap((place) => (place.export === null ? [] : [place.export])))];

describe('the export sections and the data map', () => {
  it('every section the data map names has a builder', () => {
    for (const section of mapped) assert.ok(exporter.sections.includes(section), `no builder for section "${section}"`);
  });

  it('every builder feeds a section some place of the data map names', () => {
    for (const section of exporter.sections) assert.ok(mapped.includes(section), `builder "${section}" feeds no place of the data map`);
  });

  it('the document lists exactly those sections, in the schema\'s order, after its header', () => {
    assert.deepEqual(new Set(mappedSections()), new Set(mapped));
    assert.deepEqual([...EXPORT_SECTIONS].sort(), [...mapped].sort());
    const properties = Object.keys(PrivacyExportSchema.properties);
    assert.deepEqual(properties, ['format', 'version', 'generatedAt', 'issuer', 'subject', ...EXPORT_SECTIONS]);
    assert.deepEqual(PrivacyExportSchema.required, properties, 'every section is required');
  });

  it('places that hold secrets or other people\'s data feed no section', () => {
    const secretPlaces = DATA_MAP.filter((place) => place.category === 'credential' && place.export !== null);
    // users.credentials and recovery_codes feed secondFactors: that a factor exists and how many codes are left, never the secret.
    assert.deepEqual(secretPlaces.map((place) => place.id).sort(), ['recovery_codes', 'users.credentials']);
    assert.ok(secretPlaces.every((place) => place.export === ('secondFactors' satisfies ExportSection)));
  });

  it('the published schema is plain JSON Schema 2020-12, identified by its URL', () => {
    const schema = privacyExportJsonSchema('https://id.example.com/');
    assert.equal(schema['$schema'], 'https://json-schema.org/draft/2020-12/schema');
    assert.equal(schema['$id'], 'https://id.example.com/privacy/export-schema.json');
    const text = JSON.stringify(schema);
    assert.equal(JSON.stringify(JSON.parse(text)), text, 'survives a JSON round trip');
    assert.equal(Object.getOwnPropertySymbols(schema).length, 0, 'no TypeBox markers');
  });
});
