terraform {
  required_providers {
    holdfast = {
      source = "holdfast/holdfast"
    }
  }
}

variable "holdfast_endpoint" {
  type    = string
  default = "http://127.0.0.11:9001"
}

variable "holdfast_token" {
  type      = string
  sensitive = true
}

# endpoint and token may also come from HOLDFAST_API and HOLDFAST_TOKEN.
provider "holdfast" {
  endpoint        = var.holdfast_endpoint
  token           = var.holdfast_token
  request_timeout = "30s"
}
