# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_bbedge_global_optspecs
    string join \n c/config= v/verbose log-format= h/help V/version
end

function __fish_bbedge_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_bbedge_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_bbedge_using_subcommand
    set -l cmd (__fish_bbedge_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c bbedge -n "__fish_bbedge_needs_command" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_needs_command" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_needs_command" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_needs_command" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "run" -d 'Run the daemon (the default)'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "config" -d 'Check or print the configuration'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "status" -d 'Ask the running daemon for its status and print a summary'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "token" -d 'Manage local tokens (room roles agent, operator, observer; admin for the web page)'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "pair" -d 'Pair this box with a CivicPress server using an enrollment code'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "unpair" -d 'Remove this box\'s credentials and signing key'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "led" -d 'Drive the status LED by hand'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "store" -d 'Inspect the database'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "discover" -d 'List the CivicPress boxes advertising on the LAN (mDNS)'
complete -c bbedge -n "__fish_bbedge_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand run" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand run" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand run" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand run" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and not __fish_seen_subcommand_from check default help" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and not __fish_seen_subcommand_from check default help" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and not __fish_seen_subcommand_from check default help" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and not __fish_seen_subcommand_from check default help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and not __fish_seen_subcommand_from check default help" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and not __fish_seen_subcommand_from check default help" -f -a "check" -d 'Load and validate a config file (default: the one `run` would use), with drop-ins and environment'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and not __fish_seen_subcommand_from check default help" -f -a "default" -d 'Print the built-in default configuration'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and not __fish_seen_subcommand_from check default help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from check" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from check" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from check" -l json -d 'Print the result as JSON: `ok`, the layers read and the effective configuration'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from default" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from default" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from default" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from default" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from default" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "check" -d 'Load and validate a config file (default: the one `run` would use), with drop-ins and environment'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "default" -d 'Print the built-in default configuration'
complete -c bbedge -n "__fish_bbedge_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand status" -l url -d 'The daemon\'s health URL (default: from [health] in the config)' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand status" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand status" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand status" -l json -d 'Print the raw JSON'
complete -c bbedge -n "__fish_bbedge_using_subcommand status" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand status" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -f -a "add" -d 'Issue a token; it is printed once and only its hash is kept'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -f -a "list" -d 'List tokens (ids, roles, labels; never the tokens)'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -f -a "revoke" -d 'Revoke a token by id; its live connections are closed at once'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from add" -l role -d 'The role the token grants' -r -f -a "agent\t'The box\'s capture process'
operator\t'May send commands'
observer\t'Read-only'
admin\t'Signs in to the box\'s web page (`[web]`); admits to no room'"
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from add" -l room -d 'Limit the token to one device room id (default: this box\'s room)' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from add" -l label -d 'A label to recognise the token by' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from add" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from add" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from add" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from list" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from list" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from list" -l json -d 'Print the records as a JSON array'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from revoke" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from revoke" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from revoke" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "add" -d 'Issue a token; it is printed once and only its hash is kept'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tokens (ids, roles, labels; never the tokens)'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a token by id; its live connections are closed at once'
complete -c bbedge -n "__fish_bbedge_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -l server -d 'The CivicPress base URL, e.g. https://cp.example.org' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -l device-uuid -d 'The device UUID the operator was given with the code' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -l code -d 'The enrollment code, XXXX-XXXX-XXXX (never logged); `-` reads it from stdin' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -l name -d 'The name shown in CivicPress (default: [device] name)' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -l realtime-url -d 'The realtime URL when it differs from the server\'s, e.g. wss://cp.example.org/realtime' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand pair" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand unpair" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand unpair" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand unpair" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand unpair" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand unpair" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and not __fish_seen_subcommand_from identify test help" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and not __fish_seen_subcommand_from identify test help" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and not __fish_seen_subcommand_from identify test help" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and not __fish_seen_subcommand_from identify test help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and not __fish_seen_subcommand_from identify test help" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and not __fish_seen_subcommand_from identify test help" -f -a "identify" -d 'Blink the identify pattern, then return to the current state'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and not __fish_seen_subcommand_from identify test help" -f -a "test" -d 'Cycle through every pattern, naming each'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and not __fish_seen_subcommand_from identify test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from identify" -l seconds -d 'How long to blink' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from identify" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from identify" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from identify" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from identify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from identify" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from test" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from test" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from test" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from test" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from help" -f -a "identify" -d 'Blink the identify pattern, then return to the current state'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from help" -f -a "test" -d 'Cycle through every pattern, naming each'
complete -c bbedge -n "__fish_bbedge_using_subcommand led; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and not __fish_seen_subcommand_from check help" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and not __fish_seen_subcommand_from check help" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and not __fish_seen_subcommand_from check help" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and not __fish_seen_subcommand_from check help" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Open the database and read it to the end (the daemon runs this as a child before opening it); one JSON line; exit 0 sound, 65 corrupt, 75 in use'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and __fish_seen_subcommand_from check" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and __fish_seen_subcommand_from check" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "check" -d 'Open the database and read it to the end (the daemon runs this as a child before opening it); one JSON line; exit 0 sound, 65 corrupt, 75 in use'
complete -c bbedge -n "__fish_bbedge_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand discover" -l seconds -d 'How long to listen, in seconds (1 to 60)' -r
complete -c bbedge -n "__fish_bbedge_using_subcommand discover" -s c -l config -d 'Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/)' -r -F
complete -c bbedge -n "__fish_bbedge_using_subcommand discover" -l log-format -d 'Log format (overrides [logging] format)' -r -f -a "auto\t'journald under systemd, else text'
text\t'Human-readable text'
json\t'JSON lines'
journald\t'The systemd journal'"
complete -c bbedge -n "__fish_bbedge_using_subcommand discover" -l json -d 'One JSON array of the boxes heard, instead of a table'
complete -c bbedge -n "__fish_bbedge_using_subcommand discover" -s v -l verbose -d 'More log output: -v debug, -vv trace (overrides the config and RUST_LOG)'
complete -c bbedge -n "__fish_bbedge_using_subcommand discover" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bbedge -n "__fish_bbedge_using_subcommand discover" -s V -l version -d 'Print version'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "run" -d 'Run the daemon (the default)'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "config" -d 'Check or print the configuration'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "status" -d 'Ask the running daemon for its status and print a summary'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "token" -d 'Manage local tokens (room roles agent, operator, observer; admin for the web page)'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "pair" -d 'Pair this box with a CivicPress server using an enrollment code'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "unpair" -d 'Remove this box\'s credentials and signing key'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "led" -d 'Drive the status LED by hand'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "store" -d 'Inspect the database'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "discover" -d 'List the CivicPress boxes advertising on the LAN (mDNS)'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and not __fish_seen_subcommand_from run config status token pair unpair led store discover help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "check" -d 'Load and validate a config file (default: the one `run` would use), with drop-ins and environment'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "default" -d 'Print the built-in default configuration'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "add" -d 'Issue a token; it is printed once and only its hash is kept'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "list" -d 'List tokens (ids, roles, labels; never the tokens)'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "revoke" -d 'Revoke a token by id; its live connections are closed at once'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and __fish_seen_subcommand_from led" -f -a "identify" -d 'Blink the identify pattern, then return to the current state'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and __fish_seen_subcommand_from led" -f -a "test" -d 'Cycle through every pattern, naming each'
complete -c bbedge -n "__fish_bbedge_using_subcommand help; and __fish_seen_subcommand_from store" -f -a "check" -d 'Open the database and read it to the end (the daemon runs this as a child before opening it); one JSON line; exit 0 sound, 65 corrupt, 75 in use'
