# The shipped policies' own tests: `gitops-flows policy test` (as `opa test`).
package gitops.policies_test

import rego.v1

import data.gitops.cost_tags
import data.gitops.no_public_ingress
import data.gitops.public_data
import data.gitops.stateful_resources

rc(type, actions, after) := {"address": sprintf("%s.x", [type]), "mode": "managed", "type": type,
	"change": {"actions": actions, "after": after}}

test_environment_tag_must_name_the_environment if {
	plan := {"resource_changes": [rc("aws_s3_bucket", ["create"], {"tags_all": {"Environment": "dev"}})]}
	count(cost_tags.deny) == 1 with input as plan with data.gitops.environment as "prod"
	count(cost_tags.deny) == 0 with input as plan with data.gitops.environment as "dev"
}

test_replacing_a_database_needs_an_override if {
	plan := {"resource_changes": [rc("aws_db_instance", ["delete", "create"], {})]}
	some finding in stateful_resources.deny with input as plan
	startswith(finding.msg, "replaces aws_db_instance")
}

test_updating_a_database_is_fine if {
	plan := {"resource_changes": [rc("aws_db_instance", ["update"], {})]}
	count(stateful_resources.deny) == 0 with input as plan
}

test_open_ingress_is_refused_unless_listed if {
	plan := {"resource_changes": [rc("aws_security_group", ["create"], {"ingress": [{"cidr_blocks": ["0.0.0.0/0"], "ipv6_cidr_blocks": null}]})]}
	count(no_public_ingress.deny) == 1 with input as plan
	count(no_public_ingress.deny) == 0 with input as plan
		with data.gitops_policies.public_ingress_allowed as ["aws_security_group.x"]
}

test_public_bucket_and_database if {
	plan := {"resource_changes": [
		rc("aws_s3_bucket", ["create"], {"acl": "public-read"}),
		rc("aws_db_instance", ["create"], {"publicly_accessible": true, "deletion_protection": true}),
	]}
	count(public_data.deny) == 2 with input as plan
	count(public_data.warn) == 0 with input as plan
}
