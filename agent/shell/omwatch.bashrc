# omwatch recorded shell: the command hook, the usual start-up files, then the hook armed (marks.ts).

# Percent-encodes what would end or split the report: %, ;, BEL, ESC, CR, LF.
__omwatch_enc() {
  local s=$1
  s=${s//'%'/%25}; s=${s//';'/%3B}; s=${s//$'\a'/%07}; s=${s//$'\e'/%1B}; s=${s//$'\n'/%0A}; s=${s//$'\r'/%0D}
  __omwatch_out=$s
}
# Once per line read (armed at each prompt), before its first command runs; builtins only, no fork.
__omwatch_preexec() {
  [[ -n "${__omwatch_armed-}" && -z "${COMP_LINE-}" && -z "${READLINE_POINT-}" ]] || return 0
  __omwatch_armed=
  __omwatch_enc "$PWD"
  builtin printf '\033]6973;%s;%s;' "$OMWATCH_MARK" "$__omwatch_out"
  if [[ -o history ]]; then
    HISTTIMEFORMAT= builtin history 1
  else
    builtin printf '%s\n' '(not reported: history is turned off in this shell)'
  fi
  builtin printf '\007'
}
# Defined before the user's files run, and read-only: they cannot be redefined to do nothing. Exported,
# so a bash started inside the session (even with --norc) reports too, through PROMPT_COMMAND below.
readonly -f __omwatch_enc __omwatch_preexec
export -f __omwatch_enc __omwatch_preexec

if [ -f /etc/profile ]; then . /etc/profile; fi
for __omwatch_f in "$HOME/.bash_profile" "$HOME/.bash_login" "$HOME/.profile"; do
  if [ -f "$__omwatch_f" ]; then . "$__omwatch_f"; break; fi
done
unset __omwatch_f
case "$-" in *i*) ;; *) return 0 2>/dev/null ;; esac
[ -f "$HOME/.bashrc" ] && ! grep -qs '\.bashrc' "$HOME/.profile" && . "$HOME/.bashrc"

# Armed with the builtins themselves, whatever functions the start-up files defined: in POSIX mode
# (POSIXLY_CORRECT, an assignment no function can intercept) the special builtin `unset` is found before
# a function of that name, and it removes functions that would shadow the builtins used here.
POSIXLY_CORRECT=1
unset -f builtin command trap set printf history readonly export
unset POSIXLY_CORRECT
HISTCONTROL=
HISTIGNORE=
[[ ${HISTSIZE:-0} -gt 0 ]] 2>/dev/null || HISTSIZE=1000
readonly HISTCONTROL HISTIGNORE HISTSIZE
set -o history
# Subshells and functions inherit the trap, so `( cmd )` is reported too.
set -o functrace
trap '__omwatch_preexec' DEBUG
# Each prompt puts the trap back (a `trap - DEBUG` costs one line, and is itself reported), then arms the
# hook, last, so nothing of PROMPT_COMMAND itself is taken for the line about to be read.
PROMPT_COMMAND="${PROMPT_COMMAND:+$PROMPT_COMMAND$'\n'}builtin trap __omwatch_preexec DEBUG; __omwatch_armed=1"
readonly PROMPT_COMMAND
export PROMPT_COMMAND OMWATCH_MARK
