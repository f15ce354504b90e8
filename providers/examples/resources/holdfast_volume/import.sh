# A volume is imported by its name or by its id.
terraform import holdfast_volume.pgdata pgdata
