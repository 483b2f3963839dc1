# gitops-flows: level = soft-mandatory
#
# No destroy or replace of a resource that holds data (databases, buckets, volumes, file systems,
# caches, keys) without an override by a policy owner. Soft-mandatory: sometimes it is exactly
# what is meant, but never by accident: `/gitops override <env> stateful_resources.rego <fp>`.
package gitops.stateful_resources

import rego.v1

stateful_types := {
	"aws_db_instance", "aws_rds_cluster", "aws_rds_cluster_instance", "aws_s3_bucket",
	"aws_ebs_volume", "aws_efs_file_system", "aws_dynamodb_table", "aws_elasticache_cluster",
	"aws_elasticache_replication_group", "aws_redshift_cluster", "aws_docdb_cluster",
	"aws_neptune_cluster", "aws_opensearch_domain", "aws_elasticsearch_domain", "aws_kms_key",
	"aws_backup_vault", "aws_fsx_lustre_file_system", "aws_msk_cluster",
	"google_sql_database_instance", "google_storage_bucket", "google_compute_disk",
	"google_bigquery_dataset", "google_spanner_instance", "azurerm_storage_account",
	"azurerm_mssql_database", "azurerm_postgresql_flexible_server", "azurerm_cosmosdb_account",
	"azurerm_managed_disk", "sandbox_database",
}

deny contains finding if {
	some rc in input.resource_changes
	rc.mode == "managed"
	rc.type in stateful_types
	"delete" in rc.change.actions
	verb := what(rc.change.actions)
	finding := {
		"msg": sprintf("%s %s: it holds data (a policy owner's override is needed)", [verb, rc.type]),
		"address": rc.address,
	}
}

what(actions) := "replaces" if "create" in actions

what(actions) := "destroys" if not "create" in actions
