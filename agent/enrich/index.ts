// Enrichment: adds policy context to each observation before the rules see it (design.md §3). Pure
// apart from what it is handed: the policy judge, the live session registry and the tool catalogue.
import type { RemoteAccessCatalog } from '../sensors/sessions/catalog.ts';
import type { SessionRegistry } from '../sensors/sessions/registry.ts';
import type { Observation } from '../sensors/types.ts';
import type { PolicyJudge, SessionFacts } from './policy.ts';

export interface EnrichOptions {
  /** The current policy; undefined when none is configured (then no verdicts are added). */
  judge: () => PolicyJudge | undefined;
  registry: SessionRegistry;
  catalog: RemoteAccessCatalog;
}

export type Enrich = (observation: Observation) => Observation;

export function createEnricher({ judge, registry, catalog }: EnrichOptions): Enrich {
  return (observation) => {
    const fields = observation.fields as Record<string, unknown>;
    const policy = judge();
    const text = (key: string) => (typeof fields[key] === 'string' ? fields[key] as string : undefined);
    const out: Record<string, unknown> = { ...fields };
    if (registry.size > 0) out['DuringRemoteSession'] = true;
    if (observation.category === 'process_creation') {
      const tool = catalog.byProcess(text('Image') ?? '', '');
      if (tool) out['Tool'] = tool.tool;
    }
    if (!policy) return { ...observation, fields: out } as Observation;

    let facts: SessionFacts | undefined;
    let duration: number | undefined;
    switch (observation.category) {
      case 'remote_session':
        facts = pick({ tool: text('Tool'), sourceIp: text('SourceIp'), user: text('User'), ticket: text('Ticket') });
        duration = typeof fields['DurationSeconds'] === 'number' ? fields['DurationSeconds'] : undefined;
        break;
      case 'network_connection':
        facts = pick({ tool: text('Tool'), sourceIp: fields['Initiated'] === false ? text('SourceIp') : undefined });
        break;
      default: {
        // An event of a session is judged by its session: who, from where, with what.
        const sessionId = text('SessionId');
        const session = sessionId === undefined ? undefined : registry.known(sessionId);
        if (session) facts = pick({ tool: session.tool, sourceIp: session.sourceIp, user: session.user });
        if (observation.category === 'process_creation' && typeof out['Tool'] === 'string') facts = { ...facts, tool: out['Tool'] };
      }
    }
    const verdict = facts ? policy.judge(observation.timeMs, facts, duration, observation.category === 'remote_session') : { InMaintenanceWindow: policy.inMaintenanceWindow(observation.timeMs) };
    Object.assign(out, verdict);
    return { ...observation, fields: out } as Observation;
  };
}

/** Drops undefined values, so an unknown fact is absent rather than judged. */
function pick(facts: Record<string, string | undefined>): SessionFacts {
  return Object.fromEntries(Object.entries(facts).filter(([, v]) => v !== undefined)) as SessionFacts;
}
