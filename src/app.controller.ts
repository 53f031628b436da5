import { Controller, Get } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import { Public } from './auth/public.decorator';
import { ApiProblems } from './common/problems/problem.dto';
import type { Env } from './config/env.validation';

export class StatusDto {
  @ApiProperty({ example: 'Welcome to the Chat Sessions API!' })
  message: string;

  @ApiProperty({ enum: ['running'] })
  status: 'running';

  @ApiProperty({ format: 'date-time' })
  timestamp: string;
}

@ApiTags('status')
@Public()
@Controller()
export class AppController {
  private readonly welcome: string;

  constructor(config: ConfigService<Env, true>) {
    this.welcome = `Welcome to the ${config.get('APP_NAME', { infer: true })}!`;
  }

  @Get()
  @ApiOperation({
    summary: 'Service status',
    description:
      'Answers while the process runs: a welcome line with APP_NAME, `status: "running"` and the server time. Needs no API key.',
  })
  @ApiOkResponse({ type: StatusDto, description: 'The service is running.' })
  @ApiProblems()
  status(): StatusDto {
    return { message: this.welcome, status: 'running', timestamp: new Date().toISOString() };
  }
}
