"""What runs on the machine a user types a command on: the frame every command shares
(command), connecting to Ray (cluster), MLflow's experiment and parent runs (tracking), what a
sweep prints (console), finding a stopped sweep again (resume) and ending one that cannot
finish (stopping)."""
