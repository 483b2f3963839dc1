# The sandbox application stack: one network, the web service, its load balancer, a database,
# and `worker_count` background workers (a benchmark scales the stack to ~50 resources with it).

locals {
  prefix = "${var.application}-${var.environment}"
}

module "network" {
  source = "../../sandbox/modules/network"

  name = local.prefix
  cidr = var.network_cidr
}

module "web" {
  source = "../../sandbox/modules/service"

  name       = "${local.prefix}-web"
  network_id = module.network.id
  image      = var.image
  replicas   = var.replicas
  tags       = { Component = "web" }
}

module "lb" {
  source = "../../sandbox/modules/load_balancer"

  name       = "${local.prefix}-lb"
  service_id = module.web.id
  port       = 443
  tags       = { Component = "web" }
}

module "db" {
  source = "../../sandbox/modules/database"

  name     = "${local.prefix}-db${var.db_name_suffix}"
  password = var.db_password
  tags     = { Component = "database" }
}

module "worker" {
  source = "../../sandbox/modules/service"
  count  = var.worker_count

  name       = "${local.prefix}-worker-${count.index}"
  network_id = module.network.id
  image      = var.image
  replicas   = 1
  tags       = { Component = "worker" }
}
