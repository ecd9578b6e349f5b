// The errors the agent reports to its user as they are (exit 1 or 2, no stack): what is wrong and where.
// Kept apart from the modules that throw them, so the command line can tell them without loading those.

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export class PolicyError extends Error {
  readonly code = 'POLICY_INVALID';
}

export class EnrollError extends Error {
  readonly code = 'ENROLL_FAILED';
}

export class UplinkConfigError extends Error {}

export class SpoolError extends Error {}
