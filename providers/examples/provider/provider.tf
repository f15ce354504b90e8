terraform {
  required_providers {
    holdfast = {
      source = "holdfast/holdfast"
    }
  }
}

variable "holdfast_endpoint" {
  type    = string
  default = "https://127.0.0.11:9001"
}

variable "holdfast_token" {
  type      = string
  sensitive = true
}

# The cluster's ca.crt, which an https agent's certificate is signed by; null leaves it to HOLDFAST_CA.
variable "holdfast_ca_file" {
  type    = string
  default = null
}

# endpoint, token and ca_file may also come from HOLDFAST_API, HOLDFAST_TOKEN and HOLDFAST_CA.
provider "holdfast" {
  endpoint        = var.holdfast_endpoint
  token           = var.holdfast_token
  ca_file         = var.holdfast_ca_file
  request_timeout = "30s"
}
