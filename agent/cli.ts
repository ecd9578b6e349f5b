// The `omwatch-agent` command line. Exit codes: 0 done, 1 failed, 2 the command line is wrong.
import { existsSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AGENT_VERSION, DEFAULT_DATA_DIR, DEFAULT_POLICY, DEFAULT_SHELL_SOCKET, shellSocketPath, spoolDirPath } from './defaults.ts';
import { ConfigError, EnrollError, PolicyError, SpoolError, UplinkConfigError } from './errors.ts';
import type { AgentConfig } from './config/index.ts';

// Each command loads what it needs when it runs: `shell`, which a vendor waits on at every login,
// loads only the client.

const USAGE = `usage: omwatch-agent <command> [options]

commands:
  enroll --collector URL --token T [--ca FILE] [--data DIR] [--name N]
                                    trade an enrollment token for this agent's id and key, kept in
                                    DIR/enrollment.json (mode 0600); https:// with --ca pins that CA
  run [--data DIR] [--config FILE] [--rules DIR|FILE]... [--policy FILE]
                                    run the sensors, enrich events with the policy, judge them with
                                    the rules (default: the shipped pack), keep every event and alert
                                    in DIR/outbox.db and deliver them to the enrolled collector.
                                    SIGHUP or a file change reloads rules and policy; a broken edit
                                    keeps the previous ones; SIGTERM stops, flushes, and drains
                                    [--socket PATH] recorded shells connect here (default
                                    ${DEFAULT_SHELL_SOCKET}, or DIR/shell.sock with --data)
  run --stdout [...]                the same, printing events and alerts as JSON lines instead
  shell [--ticket ID] [--reason TEXT] [--data DIR | --socket PATH] [--policy FILE] [-c CMD | -- CMD...]
                                    a recorded shell (or command) through the agent daemon: every byte
                                    kept, each command line an event, live to the SOC, which may end
                                    it. Use as a vendor account's login shell or sshd ForceCommand.
                                    Exits with the shell's exit code
  snapshot [--json] [--config FILE] print what the sensors see now: host, processes, sessions,
                                    services, connections, removable media, sensor health
  rules lint <dir|file>... [--json] check Sigma rule files; exit 1 if any rule does not load
  rules test --rules <dir|file> --events <file.jsonl> [--policy FILE]
                                    run rules over events (one envelope per line), enriched by the
                                    policy if given; print alerts as JSON lines
  version                           print the version
  help                              print this text

DIR defaults to ${DEFAULT_DATA_DIR}; the policy file to /etc/omwatch/policy.yml when it exists. The log goes to stderr (JSON lines; --log-level LEVEL to change how much).`;

class UsageError extends Error {}

const commonOptions = {
  config: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

function parse<O extends ParseArgsConfig['options']>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...commonOptions, ...options }, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError(`omwatch-agent ${command}: ${(error as Error).message}`);
  }
}

function parseWithPositionals<O extends ParseArgsConfig['options']>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...commonOptions, ...options }, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`omwatch-agent ${command}: ${(error as Error).message}`);
  }
}

async function configFrom(path: string | undefined): Promise<AgentConfig> {
  const { defaultConfig, loadConfig } = await import('./config/index.ts');
  return path ? loadConfig(path) : defaultConfig();
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'run': {
      const values = parse('run', args, { stdout: { type: 'boolean' }, data: { type: 'string' }, socket: { type: 'string' }, rules: { type: 'string', multiple: true }, policy: { type: 'string' } });
      if (values.help) return help();
      if (values.stdout && values.data) throw new UsageError('omwatch-agent run: --stdout and --data exclude each other (print, or deliver through the outbox)');
      const [{ createLogger }, { hostIdentity }, { runAgent }, { startDelivery }, { DEFAULT_RULES }, { JsonLinesSink }] = await Promise.all([
        import('./log/index.ts'), import('./host.ts'), import('./commands/run.ts'), import('./commands/deliver.ts'), import('./commands/ruleset.ts'), import('./commands/sink.ts'),
      ]);
      const config = await configFrom(values.config);
      const logger = createLogger({ level: values['log-level'] ?? config.log.level });
      const host = hostIdentity(config.host.name);
      const policyPath = values.policy ?? defaultPolicyPath();
      // Listened for from the start: a SIGTERM during start-up waits for it, then stops cleanly.
      const stopRequested = new Promise<void>((resolve) => {
        for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
      });
      // What this process creates (outbox, sockets' folders) is its own; the shell socket is opened up on purpose.
      process.umask(0o077);
      const delivery = values.stdout ? undefined : startDelivery(values.data ?? DEFAULT_DATA_DIR, config, host, logger);
      const runOptions = {
        rulePaths: values.rules?.length ? values.rules : [DEFAULT_RULES], ...(policyPath ? { policyPath } : {}),
        // Recorded shells need the outbox: with --stdout there is none to keep their recordings.
        ...(delivery ? { shell: { socketPath: shellSocketPath(values.data, values.socket), spoolDir: spoolDirPath(values.data), delivery } } : {}),
      };
      let agent: Awaited<ReturnType<typeof runAgent>>;
      try {
        agent = await runAgent(config, host, logger, delivery?.sink ?? new JsonLinesSink(process.stdout, logger), runOptions);
      } catch (error) {
        // Delivery started first: stop it, so the process exits and its supervisor sees the failure.
        await delivery?.stop();
        throw error;
      }
      delivery?.describeAgent(() => agent.describe());
      // Sensor timers do not hold the process open; this does, until a signal asks to stop.
      const keepAlive = setInterval(() => {}, 2 ** 30);
      await stopRequested;
      clearInterval(keepAlive);
      logger.info('stopping');
      await agent.stop();
      await delivery?.stop();
      return 0;
    }
    case 'shell': {
      const dashDash = args.indexOf('--');
      const own = dashDash === -1 ? args : args.slice(0, dashDash);
      const values = parse('shell', own, {
        ticket: { type: 'string' }, reason: { type: 'string' }, data: { type: 'string' }, socket: { type: 'string' }, policy: { type: 'string' },
        command: { type: 'string', short: 'c' },
      });
      if (values.help) return help();
      const after = dashDash === -1 ? [] : args.slice(dashDash + 1);
      if (values.command !== undefined && after.length > 0) throw new UsageError('omwatch-agent shell: -c CMD and -- CMD... exclude each other');
      const toRun = values.command !== undefined ? ['/bin/sh', '-c', values.command] : after.length > 0 ? after : undefined;
      const { runShellClient } = await import('./shell/client.ts');
      // The policy is read only if the daemon cannot be reached: it then says refuse or spool.
      const policyPath = values.policy ?? defaultPolicyPath();
      const loadShellPolicy = async () => {
        const [{ loadPolicy }, { DEFAULT_SHELL_POLICY }] = await Promise.all([import('./enrich/policy.ts'), import('./shell/policy.ts')]);
        const policy = policyPath ? loadPolicy(policyPath) : undefined;
        return { shell: policy?.shell ?? DEFAULT_SHELL_POLICY, maxSessionMinutes: policy?.maxSessionMinutes };
      };
      return runShellClient({
        socketPath: shellSocketPath(values.data, values.socket),
        whenDaemonDown: async () => (await loadShellPolicy()).shell.whenDaemonDown,
        spool: async (hello) => {
          const [{ runSpooledSession }, policy] = await Promise.all([import('./shell/spool.ts'), loadShellPolicy()]);
          return runSpooledSession(spoolDirPath(values.data), hello, policy.shell, policy.maxSessionMinutes);
        },
        ...(values.ticket ? { ticket: values.ticket } : {}), ...(values.reason ? { reason: values.reason } : {}), ...(toRun ? { command: toRun } : {}),
      });
    }
    case 'enroll': {
      const values = parse('enroll', args, { collector: { type: 'string' }, token: { type: 'string' }, ca: { type: 'string' }, data: { type: 'string' }, name: { type: 'string' } });
      if (values.help) return help();
      const token = values.token ?? process.env['OMWATCH_ENROLL_TOKEN'];
      if (!values.collector || !token) throw new UsageError('omwatch-agent enroll: --collector URL and --token T (or OMWATCH_ENROLL_TOKEN) are required');
      const [{ hostIdentity }, { readCa }, { enroll, saveEnrollment }] = await Promise.all([import('./host.ts'), import('./commands/deliver.ts'), import('./enroll.ts')]);
      const config = await configFrom(values.config);
      const host = hostIdentity(config.host.name);
      const caPem = values.ca ? readCa(values.ca) : undefined;
      const enrollment = await enroll({ collectorUrl: values.collector, token, name: values.name ?? host.name, hostId: host.id, ...(caPem ? { caPem } : {}) });
      const path = saveEnrollment(values.data ?? DEFAULT_DATA_DIR, enrollment);
      console.log(`enrolled as agent ${enrollment.agentId} with ${enrollment.collectorUrl}; key saved in ${path} (mode 0600)`);
      return 0;
    }
    case 'snapshot': {
      const values = parse('snapshot', args, { json: { type: 'boolean' } });
      if (values.help) return help();
      const [{ createLogger, silentLogger }, { hostIdentity }, { renderSnapshot, takeSnapshot }] = await Promise.all([import('./log/index.ts'), import('./host.ts'), import('./commands/snapshot.ts')]);
      const config = await configFrom(values.config);
      const logger = values['log-level'] ? createLogger({ level: values['log-level'] }) : silentLogger();
      const snapshot = await takeSnapshot(config, hostIdentity(config.host.name), logger);
      process.stdout.write(values.json ? `${JSON.stringify(snapshot, null, 2)}\n` : `${renderSnapshot(snapshot, process.stdout.columns ?? 0)}\n`);
      return 0;
    }
    case 'rules': {
      const [sub, ...rest] = args;
      const { lintRules, testRules } = await import('./commands/rules.ts');
      const io = { out: (line: string) => console.log(line), err: (line: string) => console.error(line) };
      if (sub === 'lint') {
        const { values, positionals } = parseWithPositionals('rules lint', rest, { json: { type: 'boolean' } });
        if (values.help) return help();
        if (positionals.length === 0) throw new UsageError('omwatch-agent rules lint: name at least one rule file or folder');
        return lintRules(positionals, Boolean(values.json), io);
      }
      if (sub === 'test') {
        const values = parse('rules test', rest, { rules: { type: 'string', multiple: true }, events: { type: 'string' }, policy: { type: 'string' } });
        if (values.help) return help();
        if (!values.rules?.length || !values.events) throw new UsageError('omwatch-agent rules test: --rules and --events are required');
        return testRules(values.rules, values.events, io, values.policy);
      }
      throw new UsageError(`omwatch-agent rules: unknown subcommand '${sub ?? ''}' (lint or test)`);
    }
    case 'version':
    case '--version':
      console.log(AGENT_VERSION);
      return 0;
    case 'help':
    case '--help':
    case '-h':
    case undefined:
      return help();
    default:
      throw new UsageError(`omwatch-agent: unknown command '${command}'`);
  }
}

function defaultPolicyPath(): string | undefined {
  return existsSync(DEFAULT_POLICY) ? DEFAULT_POLICY : undefined;
}

function help(): number {
  console.log(USAGE);
  return 0;
}

// A reader that stops early (`| head`) is not an error of ours.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (error instanceof ConfigError) {
      console.error(`omwatch-agent: invalid configuration:\n${error.message}`);
      process.exitCode = 2;
    } else if (error instanceof PolicyError) {
      console.error(`omwatch-agent: invalid policy:\n${error.message}`);
      process.exitCode = 2;
    } else if (error instanceof EnrollError || error instanceof UplinkConfigError || error instanceof SpoolError) {
      console.error(`omwatch-agent: ${error.message}`);
      process.exitCode = 1;
    } else {
      console.error(`omwatch-agent: ${(error as Error).stack ?? String(error)}`);
      process.exitCode = 1;
    }
  },
);
