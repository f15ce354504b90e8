# frozen_string_literal: true

name 'holdfast'
maintainer 'Holdfast'
license 'Apache-2.0'
description 'Installs the bundled Holdfast agent, writes its config and runs it under systemd: ' \
            'on-prem hosts join a Holdfast cluster'
version '0.1.0'
chef_version '>= 16.0'

supports 'debian'
supports 'ubuntu'
supports 'redhat'
supports 'amazon'
