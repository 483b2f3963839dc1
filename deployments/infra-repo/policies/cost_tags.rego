# gitops-flows: level = hard-mandatory
#
# Cost attribution: the Environment tag of every created, updated or replaced resource names the
# environment being deployed (a resource tagged for another environment is billed to it).
# The presence of Environment, Application and Owner is the built-in tag policy's job
# (gitops/policy.py); this adds what it cannot know: the value. Hard-mandatory: a wrong value is
# never right, and the fix is one line. Tags unknown until apply are not judged here.
package gitops.cost_tags

import rego.v1

changed(rc) if {
	rc.mode == "managed"
	some action in rc.change.actions
	action in {"create", "update"}
}

deny contains finding if {
	env := data.gitops.environment
	env != ""
	some rc in input.resource_changes
	changed(rc)
	tags := object.get(rc.change.after, "tags_all", object.get(rc.change.after, "tags", null))
	is_object(tags)
	value := tags.Environment
	is_string(value)
	value != env
	finding := {
		"msg": sprintf("tag Environment is %q, but this is environment %q", [value, env]),
		"address": rc.address,
	}
}
