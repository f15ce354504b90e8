# A volume given as separate attributes.
resource "holdfast_volume" "pgdata" {
  name       = "pgdata"
  size       = "20G"
  replicas   = 1
  filesystem = "ext4"
  labels = {
    app  = "postgres"
    tier = "db"
  }

  timeouts {
    create = "5m"
  }
}

# A volume given as one inline spec, as a Docker volume name or a Marathon app would give it.
resource "holdfast_volume" "cache" {
  spec = "name=cache,size=512M,fs=xfs,io_profile=random"
}
