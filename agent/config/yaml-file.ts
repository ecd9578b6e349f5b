// Reading a YAML settings file against its schema, shared by the config and the policy: every
// problem names the file, the line (for YAML syntax) or the key, what was expected and what was found.
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';

export type MakeError = (message: string) => Error;

export function readSettingsFile(path: string, what: string, makeError: MakeError): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw makeError(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

/** Parses and validates; throws `makeError` with one line per problem. */
export function parseSettings<S extends z.ZodType>(text: string, source: string, schema: S, makeError: MakeError): z.infer<S> {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const error = doc.errors[0]!;
    const line = error.linePos?.[0];
    throw makeError(`${source}${line ? `:${line.line}:${line.col}` : ''}: not valid YAML: ${error.message.split('\n')[0]}`);
  }
  const value: unknown = doc.toJS() ?? {};
  const result = schema.safeParse(value);
  if (!result.success) {
    throw makeError(result.error.issues.map((issue) => `${source}: ${issue.path.join('.') || '(top level)'}: ${describeIssue(issue, value)}`).join('\n'));
  }
  return result.data;
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
  const got = valueAt(root, issue.path);
  const expected = issue.message.replace(/^Invalid input: /, '').replace(/, received \w+$/, '');
  return got === undefined && issue.code === 'custom' ? expected : `${expected}, got ${JSON.stringify(got) ?? 'nothing'}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}
