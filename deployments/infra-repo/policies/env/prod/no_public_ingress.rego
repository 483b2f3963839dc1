# gitops-flows: level = hard-mandatory
#
# Production: no ingress open to the whole internet (0.0.0.0/0 or ::/0), except on the security
# groups listed in public_ingress.json beside this file (a public load balancer's), which is
# trusted configuration: it changes only by a reviewed merge to the default branch.
package gitops.no_public_ingress

import rego.v1

open_cidrs := {"0.0.0.0/0", "::/0"}

allowed(address) if address in object.get(data, ["gitops_policies", "public_ingress_allowed"], [])

cidrs(obj) := array.concat(list(obj, "cidr_blocks"), list(obj, "ipv6_cidr_blocks"))

list(obj, key) := value if {
	value := obj[key]
	is_array(value)
} else := []

changed(rc) if {
	rc.mode == "managed"
	some action in rc.change.actions
	action in {"create", "update"}
}

open_rules contains [rc.address, cidr] if {
	some rc in input.resource_changes
	changed(rc)
	rc.type == "aws_security_group"
	some rule in list(rc.change.after, "ingress")
	some cidr in cidrs(rule)
	cidr in open_cidrs
}

open_rules contains [rc.address, cidr] if {
	some rc in input.resource_changes
	changed(rc)
	rc.type == "aws_security_group_rule"
	rc.change.after.type == "ingress"
	some cidr in cidrs(rc.change.after)
	cidr in open_cidrs
}

open_rules contains [rc.address, cidr] if {
	some rc in input.resource_changes
	changed(rc)
	rc.type == "aws_vpc_security_group_ingress_rule"
	some key in ["cidr_ipv4", "cidr_ipv6"]
	cidr := rc.change.after[key]
	cidr in open_cidrs
}

deny contains finding if {
	some [address, cidr] in open_rules
	not allowed(address)
	finding := {"msg": sprintf("ingress open to %s in prod", [cidr]), "address": address}
}
