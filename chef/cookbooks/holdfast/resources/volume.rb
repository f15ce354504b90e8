# frozen_string_literal: true

unified_mode true
provides :holdfast_volume
use 'partial/_common'

description 'A Holdfast volume, created through the agent API with the installed CLI; its size only grows.'

property :volume_name, String,
         name_property: true,
         description: 'The volume name.'

property :size, String,
         required: true,
         callbacks: { 'must be a size such as 20G' => ->(v) { !Holdfast::Helpers.parse_size(v).nil? } },
         description: 'Capacity, as the spec writes it: `20G`, `512M`. Raising it grows the volume online.'

property :options, String,
         default: '',
         description: 'Other spec keys, e.g. `repl=3,fs=xfs,labels=app:pg`; they apply when the volume is created.'

property :api, String,
         default: 'http://127.0.0.1:9001',
         description: "The agent's API: `https://ADDRESS:9001` on a node with a cluster certificate."

property :ca_file, String,
         description: "The cluster CA (`ca.crt`) an https API's certificate must be signed by, e.g. the node's own " \
                      '`<dataDir>/tls/ca.crt`.'

property :token, String,
         required: true,
         sensitive: true,
         description: 'The API token.'

action_class do
  def holdfast(*args)
    shell_out!(Holdfast::Helpers.cli(new_resource.install_dir), *args,
               environment: Holdfast::Helpers.cli_env(new_resource.api, new_resource.token, new_resource.ca_file))
  end
end

load_current_value do |new_resource|
  out = shell_out(Holdfast::Helpers.cli(new_resource.install_dir), 'volume', 'inspect', new_resource.volume_name,
                  '--output', 'json',
                  environment: Holdfast::Helpers.cli_env(new_resource.api, new_resource.token, new_resource.ca_file))
  current_value_does_not_exist! unless out.exitstatus.zero?
  size "#{JSON.parse(out.stdout).fetch('size')}B"
end

action :create do
  wanted = Holdfast::Helpers.parse_size(new_resource.size)
  if current_resource.nil?
    converge_by "create volume #{new_resource.volume_name}" do
      spec = ["name=#{new_resource.volume_name}", "size=#{new_resource.size}", new_resource.options]
      holdfast('volume', 'create', spec.reject(&:empty?).join(','))
    end
  elsif wanted > Holdfast::Helpers.parse_size(current_resource.size)
    converge_by "grow volume #{new_resource.volume_name} to #{new_resource.size}" do
      holdfast('volume', 'resize', new_resource.volume_name, '--size', new_resource.size)
    end
  elsif wanted < Holdfast::Helpers.parse_size(current_resource.size)
    raise "holdfast_volume[#{new_resource.volume_name}]: volumes only grow " \
          "(#{current_resource.size} now, #{new_resource.size} asked)"
  end
end

action :delete do
  return if current_resource.nil?

  converge_by "delete volume #{new_resource.volume_name}" do
    holdfast('volume', 'delete', new_resource.volume_name)
  end
end
