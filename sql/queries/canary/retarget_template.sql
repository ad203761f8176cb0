-- A template was paused or disabled: unsent canary messages of the run move to the approved variant.
UPDATE canary_sends SET template_name = :new_template
WHERE canary_run_id = :canary_run_id AND template_name = :old_template AND status IN ('queued', 'sending')
