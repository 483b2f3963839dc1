# gitops-flows: level = hard-mandatory
#
# Data is never public by accident: no public-read bucket ACL, no publicly accessible database.
# Advisory (warn): a database without deletion protection.
package gitops.public_data

import rego.v1

changed(rc) if {
	rc.mode == "managed"
	some action in rc.change.actions
	action in {"create", "update"}
}

public_acls := {"public-read", "public-read-write", "authenticated-read"}

deny contains finding if {
	some rc in input.resource_changes
	changed(rc)
	rc.type in {"aws_s3_bucket", "aws_s3_bucket_acl"}
	rc.change.after.acl in public_acls
	finding := {"msg": sprintf("bucket ACL %q makes the data public", [rc.change.after.acl]),
	            "address": rc.address}
}

deny contains finding if {
	some rc in input.resource_changes
	changed(rc)
	rc.type in {"aws_db_instance", "aws_rds_cluster_instance"}
	rc.change.after.publicly_accessible == true
	finding := {"msg": "the database is publicly accessible", "address": rc.address}
}

warn contains finding if {
	some rc in input.resource_changes
	changed(rc)
	rc.type in {"aws_db_instance", "aws_rds_cluster"}
	not rc.change.after.deletion_protection == true
	finding := {"msg": "the database has no deletion protection", "address": rc.address}
}
