# frozen_string_literal: true

unified_mode true
provides :holdfast_service
use 'partial/_common'

description 'Runs the agent under systemd as holdfast-agent.service, the same unit as on AWS nodes.'

property :unit_name, String,
         default: 'holdfast-agent.service',
         description: 'The systemd unit.'

action_class do
  def unit
    systemd_unit new_resource.unit_name do
      content Holdfast::Helpers.unit_content(new_resource.install_dir, new_resource.config_path)
      action :nothing
    end
  end
end

action :start do
  unit.run_action(:create)
  unit.run_action(:enable)
  unit.run_action(:start)
end

action :restart do
  unit.run_action(:create)
  unit.run_action(:restart)
end

action :stop do
  unit.run_action(:stop)
  unit.run_action(:disable)
end
