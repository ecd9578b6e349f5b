// The catalogue of remote-access services and tools: which process names and ports mean which tool.
// It is data (remote-access.yml beside this file, plus the config's additions), validated once.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const port = z.number().int().min(1).max(65_535);

export const ToolSchema = z.strictObject({
  tool: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a short lower-case name like "anydesk"'),
  protocol: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a short lower-case name like "rdp"'),
  session: z.enum(['socket', 'process']).default('socket'),
  processes: z.array(z.string().min(1).max(255)).min(1),
  listenPorts: z.array(port).default([]),
  relayPorts: z.array(port).default([]),
});
export type RemoteTool = z.infer<typeof ToolSchema>;

export const CatalogFileSchema = z.strictObject({ tools: z.array(ToolSchema) });

export interface RemoteAccessCatalog {
  readonly tools: readonly RemoteTool[];
  /** The tool a process is, by the basename of its image or its short name. */
  byProcess(image: string, name: string): RemoteTool | undefined;
  /** The tool whose catalogue listen ports include `port`. */
  byListenPort(port: number): RemoteTool | undefined;
}

const DEFAULT_CATALOG_URL = new URL('./remote-access.yml', import.meta.url);

/** The shipped catalogue; throws with the file and the key when it does not validate. */
export function loadDefaultTools(): RemoteTool[] {
  const text = readFileSync(DEFAULT_CATALOG_URL, 'utf8');
  const parsed = CatalogFileSchema.safeParse(parseYaml(text));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${DEFAULT_CATALOG_URL.pathname}: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  return parsed.data.tools;
}

/** Builds the catalogue; an extra tool with the name of a shipped one replaces it. */
export function createCatalog(extra: readonly RemoteTool[] = [], base: readonly RemoteTool[] = loadDefaultTools()): RemoteAccessCatalog {
  const byName = new Map<string, RemoteTool>();
  for (const tool of [...base, ...extra]) byName.set(tool.tool, tool);
  const tools = [...byName.values()];
  const processIndex = new Map<string, RemoteTool>();
  const portIndex = new Map<number, RemoteTool>();
  for (const tool of tools) {
    for (const name of tool.processes) processIndex.set(name.toLowerCase(), tool);
    for (const listenPort of tool.listenPorts) if (!portIndex.has(listenPort)) portIndex.set(listenPort, tool);
  }
  return {
    tools,
    byProcess(image, name) {
      const file = image.slice(Math.max(image.lastIndexOf('/'), image.lastIndexOf('\\')) + 1);
      return processIndex.get(file.toLowerCase()) ?? processIndex.get(name.toLowerCase());
    },
    byListenPort(listenPort) {
      return portIndex.get(listenPort);
    },
  };
}
