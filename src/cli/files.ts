import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseAllDocuments, type Document } from 'yaml';
import type { Io } from './io.ts';

export type YamlFile = { ok: true; documents: Document[] } | { ok: false; messages: string[] };

/**
 * Reads a file (- for standard input) and parses every YAML document in it (JSON is YAML).
 * Failures come back as messages ready to print: `FILE: cannot read: ENOENT`, or
 * `FILE:LINE:COL: not valid YAML: …` for each syntax error, duplicate keys included.
 */
export async function readYamlFile(file: string, io: Io): Promise<YamlFile> {
  let text: string;
  try {
    text = file === '-' ? await readStdin(io) : await readFile(resolve(io.cwd, file), 'utf8');
  } catch (error) {
    return { ok: false, messages: [`${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`] };
  }
  const parsed = parseAllDocuments(text, { prettyErrors: true });
  const documents = Array.isArray(parsed) ? parsed : [];
  const errors = documents.flatMap((d) => d.errors);
  if (errors.length === 0) return { ok: true, documents };
  return {
    ok: false,
    messages: errors.map((e) => {
      const pos = e.linePos?.[0];
      return `${file}${pos === undefined ? '' : `:${pos.line}:${pos.col}`}: not valid YAML: ${firstLine(e.message)}`;
    }),
  };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** yaml's pretty message repeats the position and quotes the source; the prefix already says where. */
function firstLine(text: string): string {
  return (text.split('\n')[0] ?? text).replace(/ at line \d+, column \d+:?$/, '');
}

async function readStdin(io: Io): Promise<string> {
  let text = '';
  for await (const chunk of io.stdin) text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
  return text;
}
