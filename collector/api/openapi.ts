// The OpenAPI 3.1 document of the API, written from the access table: the same paths, roles and
// schemas the server enforces, so the document cannot drift from what runs.
import { z } from 'zod';
import { AGENT_VERSION } from '../../agent/defaults.ts';
import { ROUTES, type RouteSpec } from './access.ts';
import { CSRF_HEADER, SESSION_COOKIE } from './principal.ts';

type Json = Record<string, unknown>;

export function openApiDocument(): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const [name, spec] of Object.entries(ROUTES) as Array<[string, RouteSpec]>) {
    const path = spec.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const operation: Json = {
      operationId: name,
      summary: spec.websocket ? `${spec.summary} (WebSocket upgrade)` : spec.summary,
      'x-roles': spec.roles,
      ...(spec.audit ? { 'x-audit': spec.audit } : {}),
      security: spec.roles.length === 0 ? [] : [{ bearer: [] }, { login: [] }],
      parameters: [...parameters(spec.params, 'path'), ...parameters(spec.query, 'query')],
      ...(spec.body ? { requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(spec.body, { io: 'input' }) } } } } : {}),
      responses: {
        [spec.websocket ? '101' : '200']: { description: spec.websocket ? 'Switching protocols' : 'Done', ...(spec.produces ? { content: { [spec.produces]: {} } } : {}) },
        ...(spec.roles.length === 0 ? {} : { 401: { description: 'No valid token or login' }, 403: { description: `Allowed to: ${spec.roles.join(', ')}; or a missing ${CSRF_HEADER} header / foreign Origin` } }),
        400: { description: 'Input that does not fit the schema: `{error}` names the field' },
      },
    };
    // A path may hold both an HTTP route and a WebSocket upgrade: the WebSocket goes under a suffix of its own.
    const key = spec.websocket && paths[path]?.[spec.method.toLowerCase()] ? `${path}#websocket` : path;
    (paths[key] ??= {})[spec.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'omwatch collector API', version: AGENT_VERSION, description: 'Roles: design.md §8. Cookie logins must send the CSRF token in a header on every request that changes state.' },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An admin, analyst or auditor token' },
        login: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE, description: `From POST /api/v1/session; send ${CSRF_HEADER} on POST and DELETE` },
      },
    },
    paths,
  };
}

function parameters(schema: z.ZodObject | undefined, where: 'path' | 'query'): Json[] {
  if (!schema) return [];
  return Object.entries(schema.shape).map(([name, field]) => {
    const type = field as z.ZodType;
    return { name, in: where, required: where === 'path' || !type.safeParse(undefined).success, schema: z.toJSONSchema(type, { io: 'input' }) };
  });
}
