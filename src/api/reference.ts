// The README's field reference, rendered from the same structural schema as the CRD, so the
// documentation cannot describe a field, default or bound that the code does not have.

import type { SchemaNode } from './crd.ts';

export function referenceMarkdown(spec: SchemaNode): string {
  const rows: string[] = ['| Field | Type | Default | Description |', '| --- | --- | --- | --- |'];
  walk(spec, 'spec', true, rows);
  return `${rows.join('\n')}\n`;
}

function walk(node: SchemaNode, path: string, required: boolean, rows: string[]): void {
  rows.push(`| \`${path}\` | ${typeText(node, required)} | ${defaultText(node)} | ${cell(describe(node))} |`);
  const requiredNames = new Set(node.required ?? []);
  for (const [name, child] of Object.entries(node.properties ?? {})) walk(child, `${path}.${name}`, requiredNames.has(name), rows);
  const items = node.items;
  if (items?.properties !== undefined) {
    const itemRequired = new Set(items.required ?? []);
    for (const [name, child] of Object.entries(items.properties)) walk(child, `${path}[].${name}`, itemRequired.has(name), rows);
  }
}

function typeText(node: SchemaNode, required: boolean): string {
  let type = node.type ?? 'any';
  if (type === 'array') type = `list of ${node.items?.type === 'object' ? 'objects' : `${node.items?.type ?? 'any'}s`}`;
  if (type === 'object' && node.additionalProperties !== undefined) type = 'map of strings';
  if (node.enum !== undefined) type = node.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  return required && node.default === undefined ? `${type}, **required**` : type;
}

function defaultText(node: SchemaNode): string {
  if (node.default === undefined) return '';
  const text = typeof node.default === 'string' ? node.default : JSON.stringify(node.default).replaceAll(',', ', ');
  return `\`${text}\``;
}

function describe(node: SchemaNode): string {
  const parts = [node.description ?? ''];
  const bounds = boundsText(node.items?.type === 'integer' || node.items?.type === 'number' ? node.items : node);
  if (bounds !== '') parts.push(bounds);
  if (node.type === 'array' && (node.minItems !== undefined || node.maxItems !== undefined)) {
    parts.push(`${node.minItems ?? 0} to ${node.maxItems ?? 'any number of'} items.`);
  }
  const ruleMessages = (node['x-kubernetes-validations'] ?? []).filter((r) => !r.rule.startsWith('duration(')).map((r) => `Rule: ${r.message}.`);
  parts.push(...new Set(ruleMessages));
  return parts.filter((p) => p !== '').join(' ');
}

function boundsText(node: SchemaNode): string {
  const low = node.minimum === undefined ? undefined : `${node.exclusiveMinimum === true ? 'greater than' : 'at least'} ${node.minimum}`;
  const high = node.maximum === undefined ? undefined : `${node.exclusiveMaximum === true ? 'less than' : 'at most'} ${node.maximum}`;
  const words = [low, high].filter((w) => w !== undefined);
  return words.length === 0 ? '' : `${node.type === 'array' ? 'Each item' : 'Must be'} ${words.join(' and ')}.`.replace('Each item', 'Each item must be');
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}
