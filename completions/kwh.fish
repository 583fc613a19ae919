# fish completion for the kwh tools.  The options come from each tool's
# own --help.  Install in ~/.config/fish/completions/ or
# /usr/share/fish/vendor_completions.d/ as kwh-<tool>.fish, or source it.
function __kwh_options
    $argv[1] --help 2>/dev/null | string match -ar -- '--[a-z][a-z0-9-]*' | string replace -- '--' '' | sort -u
end

for tool in kwh-verify kwh-annotate kwh-fetch kwh-apply kwh-respond kwh-sign kwh-replay kwh-handle kwh-status
    complete -c $tool -f -a '(__fish_complete_path)'
    complete -c $tool -l help -d 'print the usage and exit'
    complete -c $tool -l version -d 'print the version and exit'
end
# Options that take a file or directory, for every tool that has them.
for tool in kwh-verify kwh-annotate kwh-fetch kwh-apply kwh-respond kwh-sign kwh-replay kwh-handle kwh-status
    if command -q $tool
        for opt in (__kwh_options $tool)
            switch $opt
                case secret-file kubeconfig ssh-key known-hosts token-file ca-file log app-key-file config
                    complete -c $tool -l $opt -r -F
                case cache spool
                    complete -c $tool -l $opt -r -a '(__fish_complete_directories)'
                case listen
                    complete -c $tool -l $opt -x -a 'systemd' -d '[HOST:]PORT or systemd'
                case log-format
                    complete -c $tool -l $opt -x -a 'logfmt json'
                case metrics-path
                    complete -c $tool -l $opt -x -a '/metrics none'
                case status
                    complete -c $tool -l $opt -x -a 'commit check-run'
                case status-context status-target-url
                    complete -c $tool -l $opt -x
                case statsd
                    complete -c $tool -l $opt -x -d 'HOST:PORT'
                case workers max-requests max-pending header-timeout backlog app-id installation-id hook-id max since repo api-url
                    complete -c $tool -l $opt -x
                case help version
                case '*'
                    complete -c $tool -l $opt
            end
        end
    end
end
