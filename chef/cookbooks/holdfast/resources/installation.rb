# frozen_string_literal: true

unified_mode true
provides :holdfast_installation
use 'partial/_common'

description 'Installs the bundled Holdfast agent (holdfast-agent-VERSION.tar.gz) with its checksum verified, and the ' \
            'system packages it runs on: Node 20 or later, libfuse2, e2fsprogs.'

property :version, String,
         required: true,
         description: 'The artifact version, e.g. `0.1.0`; `current` links to it.'

property :url, String,
         required: true,
         description: 'Where to download the tarball: https://, or file:// after your own copy step.'

property :sha256, String,
         required: true,
         regex: /\A\h{64}\z/,
         description: 'SHA-256 of the tarball; a download that does not match is refused.'

property :packages, Array,
         default: [],
         description: 'System packages to install first (node.js, fuse, e2fsprogs for this platform).'

load_current_value do |new_resource|
  version_file = ::File.join(new_resource.install_dir, 'current', 'VERSION')
  current_value_does_not_exist! unless ::File.exist?(version_file)
  version ::File.read(version_file).strip
end

action :install do
  package new_resource.packages unless new_resource.packages.empty?

  converge_if_changed :version do
    tarball = ::File.join(Chef::Config[:file_cache_path], "holdfast-agent-#{new_resource.version}.tar.gz")
    remote_file tarball do
      source new_resource.url
      checksum new_resource.sha256
      mode '0644'
    end

    directory new_resource.install_dir do
      recursive true
    end

    execute "unpack holdfast-agent-#{new_resource.version}" do
      command ['tar', '-xzf', tarball, '-C', new_resource.install_dir]
    end

    link ::File.join(new_resource.install_dir, 'current') do
      to "holdfast-agent-#{new_resource.version}"
    end
  end
end

action :remove do
  directory new_resource.install_dir do
    recursive true
    action :delete
  end
end
