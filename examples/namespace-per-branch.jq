# A custom step for the chain: the namespace a branch deploys to, as the
# article's "namespace per branch" does, set as an annotation that the
# Workflow can read ({{workflow.annotations.example.com/namespace}}).
#   kwh-verify … | kwh-annotate | jq -c -f namespace-per-branch.jq | kwh-fetch | …
# Envelopes that already carry a response pass through unchanged, as every
# stage passes them.  refs/heads/feature/Login_Page -> ci-feature-login-page
# (lower case, [a-z0-9-] only, at most 63 characters, no trailing dash).
if .response then . else
  .annotations["example.com/namespace"] =
    ("ci-" + (.annotations["k8s-webhook-handler.io/ref"] // ""
      | sub("^refs/(heads|tags)/"; "")
      | ascii_downcase
      | gsub("[^a-z0-9-]+"; "-"))
     | .[0:63] | sub("-+$"; ""))
end
