// Stable codes for everything a rule can get wrong, so tools and tests can key on them. A load never
// throws for a bad rule: the rule is skipped with one of these, and the others load.

export const RuleErrorCode = {
  /** The file is not YAML, or a document is not a mapping. */
  YAML: 'RULE_YAML',
  /** A required key (title, logsource, detection, condition) is missing or of the wrong type. */
  SCHEMA: 'RULE_SCHEMA',
  /** A modifier Sigma does not define. */
  BAD_MODIFIER: 'RULE_BAD_MODIFIER',
  /** Modifiers in an order Sigma forbids (`re` or `cidr` after another, `exists` with others). */
  MODIFIER_ORDER: 'RULE_MODIFIER_ORDER',
  /** A value a modifier cannot take (a string under `gt`, a wildcard under `base64`, …). */
  BAD_VALUE: 'RULE_BAD_VALUE',
  /** A regular expression that does not compile under RE2 (look-around, back-references). */
  BAD_REGEX: 'RULE_BAD_REGEX',
  /** An invalid CIDR network (`1.2.3.4/24` has host bits set). */
  BAD_CIDR: 'RULE_BAD_CIDR',
  /** A `%placeholder%` under `expand` with nothing to resolve it. */
  UNRESOLVED_PLACEHOLDER: 'RULE_UNRESOLVED_PLACEHOLDER',
  /** The condition does not parse. */
  BAD_CONDITION: 'RULE_BAD_CONDITION',
  /** The condition names a search identifier the detection does not define. */
  UNKNOWN_IDENTIFIER: 'RULE_UNKNOWN_IDENTIFIER',
  /** The deprecated aggregation syntax (`| count() by …`). */
  AGGREGATION: 'RULE_AGGREGATION',
  /** A correlation that is malformed or names rules that do not exist. */
  BAD_CORRELATION: 'RULE_BAD_CORRELATION',
  /** Two rules with the same id. */
  DUPLICATE_ID: 'RULE_DUPLICATE_ID',
} as const;
export type RuleErrorCode = (typeof RuleErrorCode)[keyof typeof RuleErrorCode];

export const RuleWarningCode = {
  /** Something Sigma allows but that is likely a mistake, or a limitation of this engine. */
  SUSPICIOUS: 'RULE_SUSPICIOUS',
  /** A key this engine does not know; it is ignored. */
  UNKNOWN_KEY: 'RULE_UNKNOWN_KEY',
} as const;
export type RuleWarningCode = (typeof RuleWarningCode)[keyof typeof RuleWarningCode];

/** Thrown inside the compiler only; the loader turns it into a RuleProblem for that one rule. */
export class RuleError extends Error {
  readonly code: RuleErrorCode;
  constructor(code: RuleErrorCode, message: string) {
    super(message);
    this.name = 'RuleError';
    this.code = code;
  }
}

export interface RuleProblem {
  code: RuleErrorCode | RuleWarningCode;
  message: string;
  file?: string;
  /** 1-based line of the rule (or of the key at fault, where known). */
  line?: number;
  ruleId?: string;
  ruleTitle?: string;
}
