// One schema per event category of design.md §3: the `fields` each category carries.
// Names follow the Sigma taxonomy so SigmaHQ rules run unchanged; our own additions are marked below.
import { z } from 'zod';
import { MAX_FIELD_STRING_CHARS, MAX_NAME_CHARS, MAX_RECORDING_CHUNK_CHARS } from './limits.ts';
import { CATEGORY_NAMES, type Category } from './category-names.ts';

const text = z.string().max(MAX_FIELD_STRING_CHARS);
const name = z.string().max(MAX_NAME_CHARS);
const pid = z.number().int().nonnegative();
const port = z.number().int().min(0).max(65_535);
const ip = z.string().max(64);

/** Policy context added by enrichment before rules run (design.md §3). Any category may carry it. */
export const EnrichmentFields = {
  SessionId: name.optional(),
  InMaintenanceWindow: z.boolean().optional(),
  ToolApproved: z.boolean().optional(),
  SourceApproved: z.boolean().optional(),
  AccountApproved: z.boolean().optional(),
  Ticket: name.optional(),
  /** Ours: the policy requires a ticket for remote sessions. */
  TicketRequired: z.boolean().optional(),
  /** Ours: a ticket is present and matches the policy's pattern (or none is required). */
  TicketValid: z.boolean().optional(),
  /** Ours: the session has run longer than the policy allows. */
  ExceedsMaxDuration: z.boolean().optional(),
  /** Ours: at least one remote session was live on the host when this happened. */
  DuringRemoteSession: z.boolean().optional(),
};

const processIdentity = {
  ProcessId: pid,
  /** Ours, after Sysmon: stays unique when the pid is reused (host, pid and start time). */
  ProcessGuid: name.optional(),
  Image: text,
  User: name.optional(),
};

export const ProcessCreationFields = z.strictObject({
  ...EnrichmentFields,
  ...processIdentity,
  CommandLine: text,
  /** Ours: true when CommandLine was cut to MAX_FIELD_STRING_CHARS. */
  CommandLineTruncated: z.boolean().optional(),
  CurrentDirectory: text.optional(),
  ParentProcessId: pid,
  ParentProcessGuid: name.optional(),
  ParentImage: text.optional(),
  ParentCommandLine: text.optional(),
  /** Ours: the controlling terminal (`pts/0`), if any. */
  Tty: name.optional(),
  /** Ours: the remote-access tool this process is, by the catalogue (anydesk, teamviewer, …). */
  Tool: name.optional(),
  /** Ours: when the process started, ISO 8601. */
  StartTime: z.iso.datetime().optional(),
  /**
   * Ours, connector source: the process had exited before its details could be read at its exec;
   * what is known (pid, parent, time, user) is reported, Image and CommandLine may be empty.
   */
  ExitedBeforeRead: z.boolean().optional(),
});

export const ProcessTerminationFields = z.strictObject({
  ...EnrichmentFields,
  ...processIdentity,
  CommandLine: text.optional(),
  ParentProcessId: pid.optional(),
  /** Ours: only sources that see the exit status fill it (the connector does); 128 + n for a process killed by signal n. */
  ExitCode: z.number().int().optional(),
  /** Ours: the signal that ended the process (`SIGKILL`, `SIGSEGV`), when one did. */
  Signal: name.optional(),
  /** Ours: how long the process ran, in seconds. */
  DurationSeconds: z.number().nonnegative().optional(),
});

/**
 * Ours: a running process changed its user without an exec (setuid(), as su, sudo, login and daemons
 * dropping root do), from the kernel's process events connector. `User`/`RealUser` are the effective
 * and real user after the change, `PreviousUser`/`PreviousRealUser` before it; `Image` and
 * `CommandLine` are what the process runs. Becoming root from another real user is escalation.
 */
export const ProcessPrivilegeChangeFields = z.strictObject({
  ...EnrichmentFields,
  ...processIdentity,
  CommandLine: text,
  ParentProcessId: pid,
  ParentImage: text.optional(),
  ParentCommandLine: text.optional(),
  RealUser: name.optional(),
  PreviousUser: name.optional(),
  PreviousRealUser: name.optional(),
  Tty: name.optional(),
});

/**
 * Source is the side that opened the connection, as in Sysmon: for an inbound connection
 * (`Initiated` false) SourceIp is the remote peer; for an outbound one it is this host.
 */
export const NetworkConnectionFields = z.strictObject({
  ...EnrichmentFields,
  Image: text.optional(),
  ProcessId: pid.optional(),
  User: name.optional(),
  Protocol: z.enum(['tcp', 'udp']),
  Initiated: z.boolean(),
  SourceIp: ip,
  SourcePort: port,
  DestinationIp: ip,
  DestinationPort: port,
  /** Ours: the remote-access tool or service this connection belongs to (ssh, anydesk, …). */
  Tool: name.optional(),
});

/** The `Tool` of the recorded shell's `remote_session` events (`omwatch-agent shell`). */
export const SHELL_TOOL = 'omwatch-shell';

export const RemoteSessionFields = z.strictObject({
  ...EnrichmentFields,
  SessionId: name,
  /** `refused`: the recorded shell did not start the session (policy gate); `Reason` says why. */
  Action: z.enum(['start', 'end', 'refused']),
  Protocol: name,
  Tool: name.optional(),
  User: name.optional(),
  SourceIp: ip.optional(),
  SourcePort: port.optional(),
  LocalPort: port.optional(),
  /** The process that holds the session (sshd's per-session process, the tool, …). */
  ProcessId: pid.optional(),
  Image: text.optional(),
  Tty: name.optional(),
  StartTime: z.iso.datetime().optional(),
  DurationSeconds: z.number().nonnegative().optional(),
  /** Ours, recorded shell: why it was opened (`--reason`), or why it was refused or flagged. */
  Reason: text.optional(),
  /** Ours, recorded shell: the session started although the policy gate said no (policy `flag`). */
  Flagged: z.boolean().optional(),
  /** Ours, recorded shell: terminal size and type at start (the recording's header). */
  Width: z.number().int().positive().max(10_000).optional(),
  Height: z.number().int().positive().max(10_000).optional(),
  Term: name.optional(),
  /** Ours, recorded shell `end`: who or what ended it (`exit`, `analyst:NAME`, `idle-timeout`, …), and the exit code. */
  EndedBy: name.optional(),
  ExitCode: z.number().int().optional(),
  /** Ours, recorded shell `end`: recording chunks written (0..Chunks-1) and output bytes seen. */
  Chunks: z.number().int().nonnegative().optional(),
  OutputBytes: z.number().int().nonnegative().optional(),
});

export const ShellCommandFields = z.strictObject({
  ...EnrichmentFields,
  SessionId: name,
  CommandLine: text,
  User: name,
  CurrentDirectory: text.optional(),
});

/**
 * Ours: a piece of a recorded shell session, asciicast v2 event lines (`[t, "o", data]` …, one per
 * line) numbered from 0 per session. Concatenated in `Chunk` order after the header that the session's
 * `remote_session` start gives, they are the session's `.cast` file.
 */
export const SessionRecordingFields = z.strictObject({
  ...EnrichmentFields,
  SessionId: name,
  Chunk: z.number().int().nonnegative().max(2 ** 31 - 1),
  Data: z.string().max(MAX_RECORDING_CHUNK_CHARS),
});

export const RemovableMediaFields = z.strictObject({
  ...EnrichmentFields,
  Action: z.enum(['attach', 'detach', 'mount', 'unmount']),
  Device: name,
  Vendor: name.optional(),
  Model: name.optional(),
  Serial: name.optional(),
  SizeBytes: z.number().int().nonnegative().optional(),
  MountPoint: text.optional(),
  FileSystem: name.optional(),
});

/** Facts about the agent itself; `Action` says which, the other fields are its details. */
export const AgentFields = z.strictObject({
  ...EnrichmentFields,
  Action: z.enum([
    'started',
    'stopped',
    'rules_loaded',
    'buffer_dropped',
    'sensor_error',
    'sensor_unavailable',
    /** A sensor's source lost events (the process connector's socket or queue overflowed); `Code`, `Count`. */
    'sensor_overflow',
    'outbox_reset',
  ]),
  Sensor: name.optional(),
  Code: name.optional(),
  Message: text.optional(),
  Count: z.number().int().nonnegative().optional(),
  FromSeq: z.number().int().nonnegative().optional(),
  ToSeq: z.number().int().nonnegative().optional(),
  /** buffer_dropped: the `prev` of the first dropped record and the `hash` of the last, so the chain is checked across the gap. */
  FromPrev: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  ToHash: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** outbox_reset: the stream that ended, and where its file was set aside. */
  PreviousStream: name.optional(),
  Path: text.optional(),
  Version: name.optional(),
});

// Exactly one schema per name of category-names.ts.
export const categoryFields = {
  process_creation: ProcessCreationFields,
  process_termination: ProcessTerminationFields,
  process_privilege_change: ProcessPrivilegeChangeFields,
  network_connection: NetworkConnectionFields,
  remote_session: RemoteSessionFields,
  shell_command: ShellCommandFields,
  session_recording: SessionRecordingFields,
  removable_media: RemovableMediaFields,
  agent: AgentFields,
} as const satisfies { readonly [C in Category]: z.ZodType };

export { type Category } from './category-names.ts';
export const CATEGORIES: readonly Category[] = CATEGORY_NAMES;

export type ProcessCreation = z.infer<typeof ProcessCreationFields>;
export type ProcessTermination = z.infer<typeof ProcessTerminationFields>;
export type ProcessPrivilegeChange = z.infer<typeof ProcessPrivilegeChangeFields>;
export type NetworkConnection = z.infer<typeof NetworkConnectionFields>;
export type RemoteSession = z.infer<typeof RemoteSessionFields>;
export type ShellCommand = z.infer<typeof ShellCommandFields>;
export type SessionRecording = z.infer<typeof SessionRecordingFields>;
export type RemovableMedia = z.infer<typeof RemovableMediaFields>;
export type AgentFact = z.infer<typeof AgentFields>;
export type FieldsOf<C extends Category> = z.infer<(typeof categoryFields)[C]>;
