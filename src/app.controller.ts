import { Controller, Get } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiOkResponse, ApiProperty, ApiTags } from '@nestjs/swagger';
import { Public } from './auth/public.decorator';
import { ApiProblems } from './common/problem.dto';
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
  @ApiOkResponse({ type: StatusDto })
  @ApiProblems()
  status(): StatusDto {
    return { message: this.welcome, status: 'running', timestamp: new Date().toISOString() };
  }
}
