environment = "prod"
application = "expense"
owner       = "platform-team"
image       = "ghcr.io/acme/expense:1.4.0"
replicas    = 3
