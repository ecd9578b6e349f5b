// The `omwatch-collector` command line. Its commands (serve, token, tail, export, verify) arrive
// with the delivery work; until then it says so plainly instead of pretending.
const USAGE = `usage: omwatch-collector <command> [options]

commands:
  version   print the version
  help      print this text

The collector's serve, token, agents, tail, export and verify commands are not built yet.`;

const [command] = process.argv.slice(2);
switch (command) {
  case 'version':
  case '--version':
    console.log('0.1.0');
    break;
  case 'help':
  case '--help':
  case '-h':
  case undefined:
    console.log(USAGE);
    break;
  default:
    console.error(`omwatch-collector: unknown command '${command}'\n\n${USAGE}`);
    process.exitCode = 2;
}
